package proxyconf

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// The generated configs are checked by the real programs' own parsers,
// included the way the README says to include them. Serving through them
// is the integration tests' business.

var syntaxCases = []struct {
	name, src string
	opts      Options
}{
	{"golden", goldenConfig, Options{}},
	{"golden on a port", goldenConfig, Options{Listen: "127.0.0.1:18080", ServerName: "www.example.com"}},
	{"tcp", tcpConfig, Options{Listen: "[::1]:18080"}},
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestNginxAcceptsOutput(t *testing.T) {
	nginxBin := testutil.RequireCommand(t, "nginx")
	for _, tt := range syntaxCases {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "udsvisor.conf"), generate(t, "nginx", parse(t, tt.src), tt.opts))
			main := filepath.Join(dir, "nginx.conf")
			writeFile(t, main, "pid "+filepath.Join(dir, "nginx.pid")+";\n"+
				"error_log "+filepath.Join(dir, "error.log")+";\n"+
				"events {}\n"+
				"http {\n    access_log off;\n    include "+filepath.Join(dir, "udsvisor.conf")+";\n}\n")
			out, err := exec.Command(nginxBin, "-t", "-q", "-p", dir+"/", "-c", main).CombinedOutput()
			if err != nil {
				t.Fatalf("nginx -t: %v\n%s", err, out)
			}
		})
	}
}

func TestApacheAcceptsOutput(t *testing.T) {
	apacheBin := testutil.RequireCommand(t, "apache2")
	const modules = "/usr/lib/apache2/modules/"
	for _, tt := range syntaxCases {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := tt.opts
			if opts.Listen == "" {
				// Port 80 relies on ports.conf's Listen, which this
				// minimal main config does not have.
				opts.Listen = "127.0.0.1:18080"
			}
			writeFile(t, filepath.Join(dir, "udsvisor.conf"), generate(t, "apache", parse(t, tt.src), opts))
			main := filepath.Join(dir, "apache2.conf")
			// Absolute paths throughout, so that Debian's envvars
			// (APACHE_RUN_DIR and friends) are not needed.
			writeFile(t, main, "ServerRoot "+dir+"\n"+
				"DefaultRuntimeDir "+dir+"\n"+
				"PidFile "+filepath.Join(dir, "apache2.pid")+"\n"+
				"ErrorLog "+filepath.Join(dir, "error.log")+"\n"+
				"ServerName localhost\n"+
				"LoadModule mpm_event_module "+modules+"mod_mpm_event.so\n"+
				"LoadModule authz_core_module "+modules+"mod_authz_core.so\n"+
				"LoadModule proxy_module "+modules+"mod_proxy.so\n"+
				"LoadModule proxy_http_module "+modules+"mod_proxy_http.so\n"+
				"LoadModule headers_module "+modules+"mod_headers.so\n"+
				"Include "+filepath.Join(dir, "udsvisor.conf")+"\n")
			out, err := exec.Command(apacheBin, "-t", "-f", main).CombinedOutput()
			if err != nil {
				t.Fatalf("apache2 -t: %v\n%s", err, out)
			}
		})
	}
}
