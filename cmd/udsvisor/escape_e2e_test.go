// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
	"github.com/udsvisor/udsvisor/internal/testutil/testapp"
)

// Escaped grandchild (SECURITY-NOTES section 6): a process that leaves its
// service's process group with setsid is reparented to udsvisor (a
// subreaper) when its parent dies, and udsvisor kills it at shutdown
// instead of leaving an orphan behind.
func TestFaultEscapedGrandchildKilledAtShutdown(t *testing.T) {
	testutil.EnsureUser(t, "udsv-a")
	dir := testutil.RunDir(t)
	cfg := filepath.Join(dir, "services.toml")
	sock := filepath.Join(dir, "esc.sock")
	text := fmt.Sprintf(`
[supervisor]
control_socket = %q
[services.esc]
command = [%q, "-escape", "-ignore-term"]
user = "udsv-a"
[[services.esc.sockets]]
path = %q
`, filepath.Join(dir, "control.sock"), testApp, sock)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startUp(t, cfg)
	body := getWhenUp(t, p, sock)
	var rep testapp.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil || rep.Grandchild == 0 {
		t.Fatalf("report %q: %v", body, err)
	}
	// The service's process dies; its escaped grandchild is not in the
	// group that udsvisor kills, and is reparented to udsvisor.
	unix.Kill(rep.Pid, unix.SIGKILL)
	// The kernel reparents the grandchild before udsvisor can reap its
	// parent.
	p.WaitExit(t, "esc", rep.Pid)
	st, err := testutil.ProcStatus(rep.Grandchild)
	if err != nil {
		t.Fatal(err)
	}
	if st["PPid"] != fmt.Sprint(p.Pid()) {
		t.Fatalf("grandchild %d has parent %s, not udsvisor %d", rep.Grandchild, st["PPid"], p.Pid())
	}
	if err := p.Stop(t); err != nil {
		t.Errorf("udsvisor up exited with %v", err)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", rep.Grandchild)); err == nil && !strings.Contains(string(b), ") Z") {
		t.Errorf("the escaped grandchild %d outlived udsvisor: %s", rep.Grandchild, b)
	}
}
