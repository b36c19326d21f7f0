package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// Escaped grandchild (SECURITY-NOTES section 6): a process that leaves its
// service's process group with setsid is reparented to udsvisor (a
// subreaper) when its parent dies, and udsvisor kills it at shutdown
// instead of leaving an orphan behind.
func TestFaultEscapedGrandchildKilledAtShutdown(t *testing.T) {
	testutil.RequireRoot(t)
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
	var body string
	testutil.Eventually(t, 20*time.Second, func() (err error) {
		body, err = get(sock)
		return err
	})
	var rep struct {
		Pid        int `json:"pid"`
		Grandchild int `json:"grandchild"`
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil || rep.Grandchild == 0 {
		t.Fatalf("report %q: %v", body, err)
	}
	// The service's process dies; its escaped grandchild is not in the
	// group that udsvisor kills, and is reparented to udsvisor.
	unix.Kill(rep.Pid, unix.SIGKILL)
	testutil.Eventually(t, 10*time.Second, func() error {
		st, err := testutil.ProcStatus(rep.Grandchild)
		if err != nil {
			return err
		}
		if st["PPid"] != fmt.Sprint(p.cmd.Process.Pid) {
			return fmt.Errorf("grandchild %d has parent %s, not udsvisor %d", rep.Grandchild, st["PPid"], p.cmd.Process.Pid)
		}
		return nil
	})
	if err := p.stop(t); err != nil {
		t.Errorf("udsvisor up exited with %v", err)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", rep.Grandchild)); err == nil && !strings.Contains(string(b), ") Z") {
		t.Errorf("the escaped grandchild %d outlived udsvisor: %s", rep.Grandchild, b)
	}
}
