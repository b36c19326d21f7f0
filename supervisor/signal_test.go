// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"context"
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// T23: signals race a service that exits and restarts all the time. A
// signal reaches only a live, unreaped process group of the service, so
// strangers (here sleepers of another user, in their own sessions, that
// SIGUSR1 would kill) never receive one, however pids are reused. The
// service ignores SIGUSR1 (an ignored signal stays ignored across exec),
// so that it keeps living its 5 ms and restarting, rather than dying of
// the signals before it started and backing off.
func TestT23SignalsNeverReachAReusedPid(t *testing.T) {
	users(t)
	b := testutil.EnsureUser(t, "udsv-b")
	h := start(t, `
[services.flappy]
command = ["/bin/sh", "-c", "trap '' USR1; exec /bin/sleep 0.005"]
user = "udsv-a"
min_uptime = "1ms"
start_limit = 0
`)
	var strangers []*exec.Cmd
	for range 20 {
		c := exec.Command("/bin/sleep", "1000")
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: b.UID, Gid: b.GID}}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		strangers = append(strangers, c)
	}
	t.Cleanup(func() {
		for _, c := range strangers {
			c.Process.Kill()
			c.Wait()
		}
	})

	ctx := context.Background()
	sent, refused := 0, 0
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		err := h.sup.Signal(ctx, "flappy", unix.SIGUSR1)
		switch {
		case err == nil:
			sent++
		case errors.Is(err, ErrNotRunning):
			refused++
		default:
			t.Fatalf("signal: %v", err)
		}
	}
	st := h.status("flappy")
	t.Logf("%d signals sent, %d refused (no process), %d restarts", sent, refused, st.Restarts)
	if st.Restarts < 20 || sent == 0 {
		t.Errorf("the race did not happen: %d restarts, %d signals sent", st.Restarts, sent)
	}
	for _, c := range strangers {
		if !alive(c.Process.Pid) {
			t.Errorf("stranger pid %d was signalled", c.Process.Pid)
		}
	}
}

// T17: a service with no process is never signalled: no kill(0) or
// kill(-1), which would hit udsvisor's own group or every process.
func TestT17SignalWithoutProcessRefused(t *testing.T) {
	users(t)
	h := start(t, appConfig)
	ctx := context.Background()
	if err := h.sup.Stop(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := h.sup.Signal(ctx, "app", unix.SIGTERM); !errors.Is(err, ErrNotRunning) {
		t.Errorf("signal to a stopped service: %v, want ErrNotRunning", err)
	}
	if err := h.sup.reaper.signal(0, unix.SIGUSR1); !errors.Is(err, ErrNotRunning) {
		t.Errorf("reaper signal to pid 0: %v", err)
	}
	if err := h.sup.reaper.signal(-1, unix.SIGUSR1); !errors.Is(err, ErrNotRunning) {
		t.Errorf("reaper signal to pid -1: %v", err)
	}
}
