// SPDX-License-Identifier: Apache-2.0

//go:build linux

package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// Puma takes a socket from LISTEN_FDS only if it recognises it by name
// (getsockname): with --bind-to-activated-sockets only, or with a -b
// naming the same path. Both forms serve the udsvisor socket as the
// service's user, with no socket of Puma's own, and a restart keeps the
// socket and its name.
func TestPumaRecognisesItsSocket(t *testing.T) {
	puma := testutil.RequireCommand(t, "/usr/bin/puma")
	u := testutil.EnsureUser(t, "udsv-app")
	s := startStack(t, `
[services.puma]
command = ["`+puma+`", "--bind-to-activated-sockets", "only", "-t", "1:2", "$APPDIR/puma_app.ru"]
user = "udsv-app"
[[services.puma.sockets]]
path = "$DIR/puma/puma.sock"
group = "www-data"
mode = "0660"

[services.pumab]
command = ["`+puma+`", "-b", "unix://%{socket.pumab.path}", "--bind-to-activated-sockets", "-t", "1:2", "$APPDIR/puma_app.ru"]
user = "udsv-app"
[[services.pumab.sockets]]
path = "$DIR/pumab/puma.sock"
`)
	for _, name := range []string{"puma", "pumab"} {
		sock := filepath.Join(s.dir, name, "puma.sock")
		svc, err := s.service(name)
		if err != nil {
			t.Fatal(err)
		}
		var a answer
		if err := json.Unmarshal([]byte(getBody(t, sock)), &a); err != nil {
			t.Fatal(err)
		}
		if a.Server != "puma" || a.Pid != svc.Pid || a.UID != int(u.UID) {
			t.Errorf("%s: answer %+v; want puma, pid %d, uid %d", name, a, svc.Pid, u.UID)
		}
		// Puma says which socket it took; the name is the configured path.
		if want := "Activated unix://" + sock; !strings.Contains(s.up.Log(), want) {
			t.Errorf("%s: the log has no %q", name, want)
		}
		before := testutil.Birth(t, sock)
		if out, err := s.ctl("restart", name); err != nil {
			t.Fatalf("ctl restart %s: %v\n%s", name, err, out)
		}
		if err := json.Unmarshal([]byte(getBody(t, sock)), &a); err != nil || a.Server != "puma" || a.Pid == svc.Pid {
			t.Errorf("%s after the restart: %+v (%v); want a new puma process", name, a, err)
		}
		if testutil.Birth(t, sock) != before {
			t.Errorf("%s: the restart re-created the socket", name)
		}
	}
	log := s.up.Log()
	if strings.Contains(log, "sockets of its own") {
		t.Error("Puma listened on a socket of its own: it did not recognise the inherited one")
	}
	if strings.Contains(log, "was unlinked") {
		t.Error("Puma unlinked its socket on stop")
	}
	sock := filepath.Join(s.dir, "puma", "puma.sock")
	addr := freePort(t)
	proveRecipe(t, s, "puma", sock, httpNginx(addr, sock), addr, "/", 3*time.Second)
}
