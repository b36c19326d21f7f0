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
// www-data (the sockets' group), every runtime file in the temp directory.
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
Include %[1]s/generated.conf
`

var apacheListenRE = regexp.MustCompile(`(?mi)^\s*Listen\s`)

// startApache runs apache2 on generated (what `udsvisor proxy apache`
// printed, with its <VirtualHost> on addr) after `apache2 -t` passed on
// the very same files, waits until it listens and stops it after the
// test.
func startApache(t *testing.T, generated, addr string) {
	t.Helper()
	bin := testutil.RequireCommand(t, "/usr/sbin/apache2")
	root := filepath.Join(testutil.RunDir(t), "apache")
	for _, d := range []string{"run", "htdocs"} {
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
	if apacheListenRE.MatchString(generated) {
		listen = ""
	}
	writeFile(t, filepath.Join(root, "generated.conf"), generated)
	writeFile(t, filepath.Join(root, "httpd.conf"), fmt.Sprintf(apacheMain, root, load.String(), listen))
	argv := []string{bin, "-d", root, "-f", filepath.Join(root, "httpd.conf")}
	configTest(t, append(argv, "-t")...)
	d := startDaemon(t, unix.SIGTERM, filepath.Join(root, "error.log"), append(argv, "-DFOREGROUND")...)
	d.waitTCP(t, addr)
}
