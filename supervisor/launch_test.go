// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// stuckHelper writes a launch helper that never execs the command nor
// reports: it keeps the report pipe open, as a helper blocked in the
// kernel would, so the launch never ends by itself.
func stuckHelper(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "stuck-helper")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexec /bin/sleep 1000\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// A launch in flight does not hold up the service: while its helper is
// stuck, status, signal and stop are answered at once, and the stop ends
// the helper.
func TestStuckLaunchDoesNotHoldUpTheService(t *testing.T) {
	users(t)
	testutil.RequireRoot(t)
	dir := testutil.RunDir(t)
	helper := stuckHelper(t, dir)
	h := run(t, dir, parse(t, expand(servingConfig, dir)), func(s *Supervisor) { s.exe = helper }, false)
	h.waitFor("web", "a launch in flight", func(st Status) bool { return st.State == Starting })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.sup.Signal(ctx, "web", unix.SIGHUP); !errors.Is(err, ErrNotRunning) {
		t.Errorf("signal during the launch: %v; want %v (the helper is not the command)", err, ErrNotRunning)
	}
	if err := h.sup.Stop(ctx, "web"); err != nil {
		t.Fatalf("stop during the launch: %v", err)
	}
	st := h.status("web")
	if st.State != Stopped || st.LastExit == nil || st.LastExit.String() != "killed by SIGTERM" {
		t.Errorf("after stop: %s, last exit %v; want stopped, the helper killed by SIGTERM", st.State, st.LastExit)
	}
}

// A helper that neither execs nor reports within the deadline is killed,
// and its end counts as a failed start.
func TestStuckHelperIsKilled(t *testing.T) {
	users(t)
	testutil.RequireRoot(t)
	dir := testutil.RunDir(t)
	helper := stuckHelper(t, dir)
	h := run(t, dir, parse(t, expand(servingConfig, dir)), func(s *Supervisor) {
		s.exe = helper
		s.helperTimeout = 200 * time.Millisecond
	}, false)
	st := h.waitFor("web", "a failed start", func(st Status) bool { return st.Failures >= 1 })
	if st.LastExit == nil || st.LastExit.String() != "killed by SIGKILL" {
		t.Errorf("last exit %v; want the helper killed by SIGKILL", st.LastExit)
	}
	if !strings.Contains(h.logs.String(), "launch helper stuck; killing it") {
		t.Error("the log does not say why the helper was killed")
	}
}
