// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// A process that binds a listening socket of its own, besides the one
// udsvisor gave it (an app that ignored LISTEN_FDS and fell back to a
// port), is named in a warning once it has started; one that serves
// only udsvisor's sockets is not.
func TestOwnListenerWarned(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	testutil.EnsureUser(t, "udsv-b")
	dir := testutil.RunDir(t)
	own := filepath.Join(dir, "own")
	if err := os.Mkdir(own, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(own, int(u.UID), int(u.GID)); err != nil {
		t.Fatal(err)
	}
	e := &ctlEnv{dir: dir, cfg: filepath.Join(dir, "services.toml"), sock: filepath.Join(dir, "ctl", "control.sock")}
	e.write(t, `
[supervisor]
control_socket = "$DIR/ctl/control.sock"

[services.sneaky]
command = ["$APP", "-bind", "$DIR/own/own.sock"]
user = "udsv-a"
[[services.sneaky.sockets]]
path = "$DIR/sneaky/sneaky.sock"

[services.honest]
command = ["$APP"]
user = "udsv-b"
[[services.honest.sockets]]
path = "$DIR/honest/honest.sock"
`)
	e.up = startUp(t, e.cfg)
	warned := func(svc string) func(testutil.Entry) bool {
		return func(en testutil.Entry) bool {
			return strings.HasPrefix(en.Msg, "the process listens on sockets of its own") && en.Str("service") == svc
		}
	}
	en := e.up.WaitLog(t, "a warning about sneaky's own socket", warned("sneaky"))
	if !strings.Contains(en.Line, "unix:"+filepath.Join(own, "own.sock")) || strings.Contains(en.Line, "sneaky.sock") {
		t.Errorf("the warning is %s, want it to name unix:%s alone", en.Line, filepath.Join(own, "own.sock"))
	}
	e.up.WaitState(t, "honest", "running")
	time.Sleep(500 * time.Millisecond) // the check runs beside the service
	for _, l := range strings.Split(e.up.Log(), "\n") {
		if strings.Contains(l, "sockets of its own") && strings.Contains(l, `"service": "honest"`) {
			t.Errorf("honest was warned: %s", l)
		}
	}
}

// A socket name unlinked while its service runs (an app that removes its
// socket path, an operator's rm) is back at once, the same socket, with a
// warning naming the service; the process is not restarted.
func TestUnlinkedNamePutBack(t *testing.T) {
	e := startCtlEnv(t, ctlConfig)
	sock := filepath.Join(e.dir, "web", "web.sock")
	before := testutil.Birth(t, sock)
	svcs, err := e.services(t)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(sock); err != nil {
		t.Fatal(err)
	}
	e.up.WaitLog(t, "the name put back", func(en testutil.Entry) bool {
		return strings.HasPrefix(en.Msg, "a socket's name was unlinked while it listens") && en.Str("services") == "web"
	})
	if testutil.Birth(t, sock) != before {
		t.Error("the name came back on another socket")
	}
	if _, err := get(sock); err != nil {
		t.Errorf("GET through the name put back: %v", err)
	}
	after, err := e.services(t)
	if err != nil || after[0].Pid != svcs[0].Pid {
		t.Errorf("web pid %d after the unlink, %d before (%v): want no restart", after[0].Pid, svcs[0].Pid, err)
	}
}
