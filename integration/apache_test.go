// SPDX-License-Identifier: Apache-2.0

//go:build linux

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// apacheModules are the modules the main config and the generated
// <VirtualHost> blocks need, from Debian's apache2 package (unixd, for
// User and Group, is built in there).
var apacheModules = []string{"mpm_event", "authz_core", "proxy", "proxy_http", "headers"}

// apacheMain is the main config around the generated file: children as
// www-data (the sockets' group), every runtime file in the temp directory,
// and the sites read from sites-enabled/ in name order, as Debian's
// apache2.conf reads them.
const apacheMain = `ServerRoot %[1]s
ServerName localhost
%[2]s
User www-data
Group www-data
%[3]s
PidFile %[1]s/httpd.pid
DefaultRuntimeDir %[1]s/run
ErrorLog %[1]s/error.log
LogLevel warn
DocumentRoot %[1]s/htdocs
IncludeOptional %[1]s/sites-enabled/*.conf
`

var apacheListenRE = regexp.MustCompile(`(?mi)^\s*Listen\s`)

// startApache runs apache2 on generated (what `udsvisor proxy apache`
// printed, with its <VirtualHost> on addr) after `apache2 -t` passed on
// the very same files, waits until it listens and stops it after the
// test.
func startApache(t *testing.T, generated, addr string) {
	t.Helper()
	startApacheSites(t, map[string]string{"udsvisor": generated}, addr)
}

// startApacheSites is startApache on several sites, name → text, each
// written to sites-enabled/NAME.conf.
func startApacheSites(t *testing.T, sites map[string]string, addr string) {
	t.Helper()
	bin := testutil.RequireCommand(t, "/usr/sbin/apache2")
	root := filepath.Join(testutil.RunDir(t), "apache")
	for _, d := range []string{"run", "htdocs", "sites-enabled"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var load strings.Builder
	for _, m := range apacheModules {
		fmt.Fprintf(&load, "LoadModule %s_module /usr/lib/apache2/modules/mod_%s.so\n", m, m)
	}
	// The generated file may carry its own Listen; two for one address
	// is an error.
	listen := "Listen " + addr
	for name, text := range sites {
		if apacheListenRE.MatchString(text) {
			listen = ""
		}
		writeFile(t, filepath.Join(root, "sites-enabled", name+".conf"), text)
	}
	writeFile(t, filepath.Join(root, "httpd.conf"), fmt.Sprintf(apacheMain, root, load.String(), listen))
	argv := []string{bin, "-d", root, "-f", filepath.Join(root, "httpd.conf")}
	configTest(t, append(argv, "-t")...)
	d := startDaemon(t, unix.SIGTERM, filepath.Join(root, "error.log"), append(argv, "-DFOREGROUND")...)
	d.waitTCP(t, addr)
}

// installedAs is the site name a generated Apache file tells to install
// it under ("Install it as /etc/apache2/sites-available/NAME.conf").
var installedAs = regexp.MustCompile(`(?m)^# Install it as /etc/apache2/sites-available/([A-Za-z0-9_-]+)\.conf, then a2ensite `)

// Issue 10, item 9: installed under the name its header gives, next to a
// stand-in for Debian's 000-default site on the same address (it refuses
// everything with 403), the generated VirtualHost answers every Host no
// ServerName matches; with --server-name it answers that name only and
// leaves the others to 000-default, as the header says.
func TestApacheDefaultVhost(t *testing.T) {
	s := appStack(t, "www-data")
	for _, tt := range []struct {
		name    string
		args    []string
		site    string
		unknown int // the status for Host unknown.example
	}{
		{"catch-all", nil, "00-udsvisor", 200},
		{"--server-name", []string{"--server-name", "app.example"}, "udsvisor", 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := freePort(t)
			generated := generateProxy(t, "apache", s.cfg, addr, tt.args...)
			m := installedAs.FindStringSubmatch(generated)
			if m == nil {
				t.Fatalf("the header names no site:\n%s", generated)
			}
			if m[1] != tt.site {
				t.Errorf("the header names site %s, want %s", m[1], tt.site)
			}
			debianDefault := "<VirtualHost " + addr + ">\n\t<Location />\n\t\tRequire all denied\n\t</Location>\n</VirtualHost>\n"
			startApacheSites(t, map[string]string{"000-default": debianDefault, m[1]: generated}, addr)
			if code := statusFor(t, "http://"+addr+"/", "unknown.example"); code != tt.unknown {
				t.Errorf("Host unknown.example: %d, want %d", code, tt.unknown)
			}
			if tt.args != nil {
				if code := statusFor(t, "http://"+addr+"/", "app.example"); code != 200 {
					t.Errorf("Host app.example: %d, want 200", code)
				}
			}
		})
	}
}
