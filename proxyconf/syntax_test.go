package proxyconf

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// The generated configs are checked by the real programs' own parsers,
// included the way the README says to include them. Serving through them
// is the integration tests' business.

type syntaxCase struct {
	name, src string
	opts      Options
}

var syntaxCases = []syntaxCase{
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

func TestCaddyAcceptsOutput(t *testing.T) {
	caddyBin := testutil.RequireCommand(t, "caddy")
	for _, tt := range syntaxCases {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "udsvisor.caddy"), generate(t, "caddy", parse(t, tt.src), tt.opts))
			main := filepath.Join(dir, "Caddyfile")
			// Imported from a main Caddyfile, as the header says; the
			// admin endpoint would bind a port.
			writeFile(t, main, "{\n\tadmin off\n}\nimport "+filepath.Join(dir, "udsvisor.caddy")+"\n")
			cmd := exec.Command(caddyBin, "validate", "--config", main, "--adapter", "caddyfile")
			// Caddy keeps its state under $HOME and the XDG directories.
			cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("caddy validate: %v\n%s", err, out)
			}
		})
	}
}

func TestHAProxyAcceptsOutput(t *testing.T) {
	haproxyBin := testutil.RequireCommand(t, "haproxy")
	cases := append(slices.Clone(syntaxCases), syntaxCase{"chroot", goldenConfig, Options{Chroot: "/run/udsv-proxy-test"}})
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// After the global and defaults sections, as the header says
			// (two -f files are read as one).
			main := filepath.Join(dir, "haproxy.cfg")
			writeFile(t, main, "global\n    log stderr local0\n\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 50s\n    timeout server 50s\n")
			generated := filepath.Join(dir, "udsvisor.cfg")
			writeFile(t, generated, generate(t, "haproxy", parse(t, tt.src), tt.opts))
			if out, err := exec.Command(haproxyBin, "-c", "-f", main, "-f", generated).CombinedOutput(); err != nil {
				t.Fatalf("haproxy -c: %v\n%s", err, out)
			}
		})
	}
}
