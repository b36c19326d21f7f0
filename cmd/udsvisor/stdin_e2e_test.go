// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udsvisor/udsvisor/internal/testutil"
	"github.com/udsvisor/udsvisor/internal/testutil/testapp"
)

// stdin = true hands that socket to the command as its fd 0 (what Java's
// System.inheritedChannel and inetd-style servers take); the others keep
// fd 3 and up, and LISTEN_FDS and LISTEN_FDNAMES count only them.
func TestStdinSocket(t *testing.T) {
	e := startCtlEnv(t, `
[supervisor]
control_socket = "$DIR/ctl/control.sock"

[services.web]
command = ["$APP", "-stdin"]
user = "udsv-a"
[[services.web.sockets]]
name = "inherited"
path = "$DIR/web/inherited.sock"
stdin = true
[[services.web.sockets]]
name = "http"
path = "$DIR/web/http.sock"
`)
	reports := map[string]testapp.Report{}
	for _, sock := range []string{"inherited", "http"} {
		body, err := get(filepath.Join(e.dir, "web", sock+".sock"))
		if err != nil {
			t.Fatalf("GET on %s: %v", sock, err)
		}
		var rep testapp.Report
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatalf("GET on %s: %q: %v", sock, body, err)
		}
		reports[sock] = rep
	}
	if r := reports["inherited"]; r.Socket != "stdin" || r.ListenFDs != "1" || r.FDNames != "http" {
		t.Errorf("through inherited.sock: served on %q with LISTEN_FDS=%q LISTEN_FDNAMES=%q; want stdin, 1, http",
			r.Socket, r.ListenFDs, r.FDNames)
	}
	if r := reports["http"]; r.Socket != "http" {
		t.Errorf("through http.sock: served on %q, want http", r.Socket)
	}
	svcs, err := e.services(t)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := testutil.ProcFDs(svcs[0].Pid)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range svcs[0].Sockets {
		got = append(got, fmt.Sprintf("%s=%d", s.Name, s.FD))
	}
	if fmt.Sprint(got) != "[inherited=0 http=3]" {
		t.Errorf("ctl status sockets: %v, want [inherited=0 http=3]", got)
	}
	// (The app has moved fd 3 by now: go-systemd takes it over.)
	if !strings.HasPrefix(fds[0], "socket:") {
		t.Errorf("/proc/%d/fd/0 is %s, want the socket", svcs[0].Pid, fds[0])
	}
}
