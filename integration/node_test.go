// SPDX-License-Identifier: Apache-2.0

//go:build linux

package integration

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// Node.js serves the socket udsvisor passed at fd 3 with
// server.listen({fd: 3}), as the README's porting table says: the answer
// comes from the service's own process, as its own user, and a restart
// keeps the socket.
func TestNodeOnFD3(t *testing.T) {
	node := testutil.RequireCommand(t, "/usr/bin/node")
	u := testutil.EnsureUser(t, "udsv-app")
	s := startStack(t, `
[services.node]
command = ["`+node+`", "$APPDIR/node_app.js"]
user = "udsv-app"
[[services.node.sockets]]
path = "$DIR/node/node.sock"
group = "www-data"
mode = "0660"
`)
	sock := filepath.Join(s.dir, "node", "node.sock")
	svc, err := s.service("node")
	if err != nil {
		t.Fatal(err)
	}
	var a answer
	if err := json.Unmarshal([]byte(getBody(t, sock)), &a); err != nil {
		t.Fatal(err)
	}
	if a.Server != "node" || a.Pid != svc.Pid || a.UID != int(u.UID) {
		t.Errorf("answer %+v; want node, pid %d, uid %d", a, svc.Pid, u.UID)
	}
	before := testutil.Birth(t, sock)
	if out, err := s.ctl("restart", "node"); err != nil {
		t.Fatalf("ctl restart: %v\n%s", err, out)
	}
	if err := json.Unmarshal([]byte(getBody(t, sock)), &a); err != nil || a.Server != "node" || a.Pid == svc.Pid {
		t.Errorf("after the restart: %+v (%v); want a new node process", a, err)
	}
	if testutil.Birth(t, sock) != before {
		t.Error("the restart re-created the socket")
	}
	addr := freePort(t)
	proveRecipe(t, s, "node", sock, httpNginx(addr, sock), addr, "/", 3*time.Second)
}
