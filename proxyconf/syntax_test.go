// SPDX-License-Identifier: Apache-2.0

//go:build linux

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

// syntaxChecks are the programs that check each kind of generated config.
var syntaxChecks = []struct {
	kind, bin string
	// file is the generated config's name.
	file string
	// listen, if set, stands for an empty Options.Listen.
	listen string
	// more are cases of this kind's own.
	more []syntaxCase
	// check writes the main config that includes generated, both in dir,
	// and returns the command that checks them.
	check func(t *testing.T, bin, dir, generated string) *exec.Cmd
}{
	{kind: "nginx", bin: "nginx", file: "udsvisor.conf",
		check: func(t *testing.T, bin, dir, generated string) *exec.Cmd {
			main := filepath.Join(dir, "nginx.conf")
			writeFile(t, main, "pid "+filepath.Join(dir, "nginx.pid")+";\n"+
				"error_log "+filepath.Join(dir, "error.log")+";\n"+
				"events {}\n"+
				"http {\n    access_log off;\n    include "+generated+";\n}\n")
			return exec.Command(bin, "-t", "-q", "-p", dir+"/", "-c", main)
		}},
	// Port 80 relies on ports.conf's Listen, which this minimal main
	// config does not have.
	{kind: "apache", bin: "apache2", file: "udsvisor.conf", listen: "127.0.0.1:18080",
		check: func(t *testing.T, bin, dir, generated string) *exec.Cmd {
			const modules = "/usr/lib/apache2/modules/"
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
				"Include "+generated+"\n")
			return exec.Command(bin, "-t", "-f", main)
		}},
	{kind: "caddy", bin: "caddy", file: "udsvisor.caddy",
		check: func(t *testing.T, bin, dir, generated string) *exec.Cmd {
			main := filepath.Join(dir, "Caddyfile")
			// Imported from a main Caddyfile, as the header says; the
			// admin endpoint would bind a port.
			writeFile(t, main, "{\n\tadmin off\n}\nimport "+generated+"\n")
			cmd := exec.Command(bin, "validate", "--config", main, "--adapter", "caddyfile")
			// Caddy keeps its state under $HOME and the XDG directories.
			cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
			return cmd
		}},
	{kind: "haproxy", bin: "haproxy", file: "udsvisor.cfg",
		more: []syntaxCase{{"chroot", goldenConfig, Options{Chroot: "/run/udsv-proxy-test"}}},
		check: func(t *testing.T, bin, dir, generated string) *exec.Cmd {
			// After the global and defaults sections, as the header says
			// (two -f files are read as one).
			main := filepath.Join(dir, "haproxy.cfg")
			writeFile(t, main, "global\n    log stderr local0\n\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 50s\n    timeout server 50s\n")
			return exec.Command(bin, "-c", "-f", main, "-f", generated)
		}},
}

func TestProxiesAcceptOutput(t *testing.T) {
	for _, c := range syntaxChecks {
		t.Run(c.kind, func(t *testing.T) {
			bin := testutil.RequireCommand(t, c.bin)
			for _, tt := range append(slices.Clone(syntaxCases), c.more...) {
				t.Run(tt.name, func(t *testing.T) {
					dir := t.TempDir()
					opts := tt.opts
					if opts.Listen == "" {
						opts.Listen = c.listen
					}
					generated := filepath.Join(dir, c.file)
					writeFile(t, generated, generate(t, c.kind, parse(t, tt.src), opts))
					cmd := c.check(t, bin, dir, generated)
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("%s: %v\n%s", cmd, err, out)
					}
				})
			}
		})
	}
}
