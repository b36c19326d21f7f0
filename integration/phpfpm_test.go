// SPDX-License-Identifier: Apache-2.0

//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// PHP-FPM ignores LISTEN_FDS and takes inherited sockets from
// FPM_SOCKETS="<listen>=<fd>", matched against its pool's listen: a
// socket placeholder gives it exactly that. It serves the udsvisor
// socket (no socket of its own), as its user, and a restart keeps the
// socket.
func TestPHPFPMWithPlaceholders(t *testing.T) {
	fpm := testutil.RequireCommand(t, "/usr/sbin/php-fpm8.2")
	client := testutil.RequireCommand(t, "/usr/bin/cgi-fcgi")
	u := testutil.EnsureUser(t, "udsv-app")
	base := filepath.Join(testutil.RunDir(t), "php")
	run := filepath.Join(base, "run")
	for _, d := range []string{base, run} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The log and pid files are the service user's: php-fpm cannot
	// reopen udsvisor's pipes by path (/proc/self/fd/2 is root's).
	if err := os.Chown(run, int(u.UID), int(u.GID)); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(base, "index.php")
	writeFile(t, script, `<?php echo json_encode(["server" => "php-fpm", "pid" => getmypid(), "uid" => posix_getuid()]);`+"\n")
	sock := filepath.Join(base, "fpm", "fpm.sock")
	writeFile(t, filepath.Join(base, "fpm.conf"), fmt.Sprintf(`[global]
error_log = %s/error.log
pid = %s/fpm.pid
daemonize = no

[app]
listen = %s
pm = static
pm.max_children = 2
`, run, run, sock))
	s := startStack(t, fmt.Sprintf(`
[services.php]
command = [%q, "--nodaemonize", "--fpm-config", %q]
user = "udsv-app"
environment = { FPM_SOCKETS = "%%{socket.fpm.path}=%%{socket.fpm.fd}" }
[[services.php.sockets]]
name = "fpm"
path = %q
group = "www-data"
mode = "0660"
`, fpm, filepath.Join(base, "fpm.conf"), sock))
	ask := func() answer {
		t.Helper()
		cmd := exec.Command(client, "-bind", "-connect", sock)
		cmd.Env = []string{"SCRIPT_FILENAME=" + script, "REQUEST_METHOD=GET"}
		out, err := cmd.Output()
		_, body, _ := strings.Cut(string(out), "\r\n\r\n")
		var a answer
		if err != nil || json.Unmarshal([]byte(body), &a) != nil {
			t.Fatalf("cgi-fcgi through %s: %v: %q", sock, err, out)
		}
		return a
	}
	if a := ask(); a.Server != "php-fpm" || a.UID != int(u.UID) {
		t.Errorf("answer %+v; want php-fpm as uid %d", a, u.UID)
	}
	before := testutil.Birth(t, sock)
	if out, err := s.ctl("restart", "php"); err != nil {
		t.Fatalf("ctl restart: %v\n%s", err, out)
	}
	if a := ask(); a.Server != "php-fpm" {
		t.Errorf("after the restart: %+v", a)
	}
	if testutil.Birth(t, sock) != before {
		t.Error("the restart re-created the socket")
	}
	if strings.Contains(s.up.Log(), "sockets of its own") {
		t.Error("php-fpm listened on a socket of its own: it did not take the inherited one")
	}
	addr := freePort(t)
	proveRecipe(t, s, "php", sock, fastcgiNginx(addr, sock, script), addr, "/", 3*time.Second)
}
