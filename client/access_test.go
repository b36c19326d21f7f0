// SPDX-License-Identifier: Apache-2.0

//go:build linux

package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// helperEnv names the helper the test binary runs instead of the tests
// when it is re-executed as another user.
const helperEnv = "UDSVISOR_CLIENT_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "list" {
		// Print what a real unprivileged `ctl status` would get.
		_, err := New(os.Getenv("SOCKET")).List(context.Background())
		fmt.Print(err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// listenAt binds a Unix socket at path with the given group and mode.
func listenAt(t *testing.T, path string, gid int, mode os.FileMode) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if err := os.Lchown(path, 0, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestEACCESAsAnotherUser(t *testing.T) {
	a := testutil.EnsureUser(t, "udsv-a")
	dir := testutil.RunDir(t)
	open := filepath.Join(dir, "control.sock")
	listenAt(t, open, 0, 0o660)
	closedDir := filepath.Join(dir, "closed")
	if err := os.Mkdir(closedDir, 0o700); err != nil {
		t.Fatal(err)
	}
	closed := filepath.Join(closedDir, "control.sock")
	listenAt(t, closed, 0, 0o666)

	self := testutil.CopyTestBinary(t)
	for _, tt := range []struct{ socket, want string }{
		{open, fmt.Sprintf("permission denied on %s (you are uid %d, not in group root)", open, a.UID)},
		{closed, fmt.Sprintf("permission denied on %s (you are uid %d and cannot search its directory)", closed, a.UID)},
	} {
		cmd := exec.Command(self)
		cmd.Env = []string{helperEnv + "=list", "SOCKET=" + tt.socket}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: a.UID, Gid: a.GID}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper: %v: %s", err, out)
		}
		if string(out) != tt.want {
			t.Errorf("got  %s\nwant %s", out, tt.want)
		}
	}
}

func TestExplainAccess(t *testing.T) {
	gid := int(testutil.EnsureGroup(t, "udsv-ctl"))
	dir := testutil.RunDir(t)
	sock := filepath.Join(dir, "control.sock")
	listenAt(t, sock, gid, 0o600)

	tests := []struct {
		name   string
		socket string
		who    identity
		want   string
	}{
		{"not in group", sock, identity{uid: 1000, gids: []int{1000}},
			"permission denied on " + sock + " (you are uid 1000, not in group udsv-ctl)"},
		{"in group, mode", sock, identity{uid: 1000, gids: []int{1000, gid}},
			"permission denied on " + sock + " (you are uid 1000, in group udsv-ctl, but the socket's mode is 0600)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cause := &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)}
			err := explainDial(tt.socket, cause, tt.who, defaultBusyWait)
			wantErr(t, err, tt.want, syscall.EACCES)
		})
	}
}

func TestExplainDialOtherErrno(t *testing.T) {
	cause := &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EAGAIN)}
	err := explainDial("/run/x.sock", cause, identity{}, 5*time.Second)
	if want := "control socket /run/x.sock is busy (its connection backlog stayed full for 5s); try again"; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	cause = &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.ENAMETOOLONG)}
	err = explainDial("/run/x.sock", cause, identity{}, 5*time.Second)
	if !strings.HasPrefix(err.Error(), "connect to control socket: ") || !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("got %q", err)
	}
}
