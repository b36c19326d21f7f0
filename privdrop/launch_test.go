// SPDX-License-Identifier: Apache-2.0

//go:build linux

package privdrop_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
	"github.com/udsvisor/udsvisor/privdrop"
)

const zeroCaps = "0000000000000000"

// TestT11T12Credentials checks the ids, groups, no_new_privs, capabilities,
// umask and working directory of the command as the kernel reports them.
// The supervisor forks with an inheritable and ambient capability so that
// the zero capability sets prove something (T11, T12).
func TestT11T12Credentials(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	g1 := testutil.EnsureGroup(t, "udsv-pd-g1")
	g2 := testutil.EnsureGroup(t, "udsv-pd-g2")

	for _, tc := range []struct {
		name   string
		groups []uint32
	}{
		{"no groups", nil},
		{"two groups", []uint32{g2, g1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := probeSpec(t, u, 0, "")
			spec.Groups = tc.groups
			s, rep := mustStart(t, spec, nil, launchOpts{inheritCaps: true})
			st := status(t, s.cmd.Process.Pid)

			wantUID := strings.Repeat(strconv.Itoa(int(u.UID))+"\t", 4)
			wantGID := strings.Repeat(strconv.Itoa(int(u.GID))+"\t", 4)
			if got := st["Uid"]; got != strings.TrimSpace(wantUID) {
				t.Errorf("Uid: %q, want %q", got, strings.TrimSpace(wantUID))
			}
			if got := st["Gid"]; got != strings.TrimSpace(wantGID) {
				t.Errorf("Gid: %q, want %q", got, strings.TrimSpace(wantGID))
			}
			var gotGroups []uint32
			for _, f := range strings.Fields(st["Groups"]) {
				g, _ := strconv.ParseUint(f, 10, 32)
				gotGroups = append(gotGroups, uint32(g))
			}
			want := slices.Sorted(slices.Values(tc.groups))
			slices.Sort(gotGroups)
			if !slices.Equal(gotGroups, want) {
				t.Errorf("Groups: %q, want exactly %v", st["Groups"], want)
			}
			if st["NoNewPrivs"] != "1" {
				t.Errorf("NoNewPrivs: %q, want 1", st["NoNewPrivs"])
			}
			for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
				if st[k] != zeroCaps {
					t.Errorf("%s: %s, want %s", k, st[k], zeroCaps)
				}
			}
			if st["Umask"] != "0027" {
				t.Errorf("Umask: %q, want 0027", st["Umask"])
			}
			if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", s.cmd.Process.Pid)); err != nil || cwd != spec.Dir {
				t.Errorf("cwd: %q (%v), want %q", cwd, err, spec.Dir)
			}
			if rep.UID != int(u.UID) || rep.EUID != int(u.UID) || rep.GID != int(u.GID) || rep.EGID != int(u.GID) {
				t.Errorf("probe sees uid %d euid %d gid %d egid %d", rep.UID, rep.EUID, rep.GID, rep.EGID)
			}
		})
	}
}

// TestT10FDs checks that the command holds exactly stdin (/dev/null),
// stdout, stderr and its sockets, none close-on-exec, even when the
// supervisor has leaked fds that are not close-on-exec (T10), and that
// LISTEN_PID lets a socket-activation library accept the sockets.
func TestT10FDs(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	spec := probeSpec(t, u, 2, "web:admin")
	files, targets := listeners(t, spec.Dir, "web", "admin")

	leakFDs(t)

	s, rep := mustStart(t, spec, files, launchOpts{})
	pid := s.cmd.Process.Pid

	want := map[int]string{
		0: "/dev/null",
		1: s.stdoutPipe,
		2: s.stderr.Name(),
		3: targets[0],
		4: targets[1],
	}
	got, err := testutil.ProcFDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("/proc/%d/fd: %v, want exactly %v", pid, got, want)
	}
	for _, fd := range []string{"3", "4"} {
		if f, ok := rep.FDs[fd]; !ok || f.Cloexec {
			t.Errorf("probe's fd %s: %+v, want open and not close-on-exec", fd, f)
		}
	}
	if !slices.Equal(rep.Activation, []string{"web", "admin"}) {
		t.Errorf("activation.Files names: %q, want [web admin] (LISTEN_PID accepted)", rep.Activation)
	}
}

// TestT14Environment checks that the command's environment is exactly
// Spec.Env plus its own LISTEN_PID and LISTEN_PIDFDID, whatever the
// supervisor's holds (T14).
func TestT14Environment(t *testing.T) {
	testutil.RequireRoot(t)
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	t.Setenv("FOO", "secret")
	u := testutil.EnsureUser(t, "udsv-a")
	spec := probeSpec(t, u, 1, "web")
	spec.Env = append(spec.Env, "APP_MODE=prod")
	files, _ := listeners(t, spec.Dir, "web")

	s, _ := mustStart(t, spec, files, launchOpts{noStderr: true})
	pid := s.cmd.Process.Pid
	got, err := testutil.ProcEnviron(pid)
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(spec.Env), "LISTEN_PID="+strconv.Itoa(pid), "LISTEN_PIDFDID="+testutil.PidfdID(t, pid))
	if !slices.Equal(got, want) {
		t.Errorf("/proc/%d/environ:\n got %q\nwant %q", pid, got, want)
	}
	if fds, err := testutil.ProcFDs(pid); err != nil || fds[2] != "/dev/null" {
		t.Errorf("fd 2 with a nil stderr: %q (%v), want /dev/null", fds[2], err)
	}
}

// TestFailures checks that a launch the helper cannot carry out comes
// back from AfterStart as an error naming what failed, that the helper
// exits 127, and that the command never runs.
func TestFailures(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	dir := testutil.RunDir(t)
	noexec := filepath.Join(dir, "noexec")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	private := filepath.Join(dir, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	nrOpen := uint64(sysctl(t, "fs/nr_open"))

	for _, tc := range []struct {
		name   string
		edit   func(*privdrop.Spec)
		mutate func(*exec.Cmd)
		want   string
		is     error
	}{
		{"missing command", func(s *privdrop.Spec) { s.Path = missing },
			nil, "exec " + missing + ": no such file or directory", fs.ErrNotExist},
		{"not executable", func(s *privdrop.Spec) { s.Path = noexec },
			nil, "exec " + noexec + ": permission denied", fs.ErrPermission},
		{"dir closed to the user", func(s *privdrop.Spec) { s.Dir = private },
			nil, "chdir " + private + ": permission denied", fs.ErrPermission},
		{"nofile above fs.nr_open", func(s *privdrop.Spec) {
			s.Rlimits = []privdrop.Rlimit{{Resource: unix.RLIMIT_NOFILE, Cur: 1024, Max: nrOpen + 1}}
		}, nil, "setrlimit RLIMIT_NOFILE: operation not permitted", fs.ErrPermission},
		{"T11 setgroups denied", nil, sysProcAttrUserns(false),
			"setgroups: operation not permitted", fs.ErrPermission},
		{"T11 unmapped gid", nil, sysProcAttrUserns(true),
			fmt.Sprintf("setgid %d: invalid argument", u.GID), syscall.EINVAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := probeSpec(t, u, 0, "")
			if tc.edit != nil {
				tc.edit(spec)
			}
			s, err := launch(t, spec, nil, launchOpts{mutate: tc.mutate})
			if s == nil {
				// Only the user-namespace cases can fail to start.
				testutil.Unavailable(t, "start helper in a user namespace: %v", err)
			}
			if err == nil {
				t.Fatalf("AfterStart succeeded, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("AfterStart: %q, want %q", err, tc.want)
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("AfterStart: %v is not %v", err, tc.is)
			}
			if out := drain(t, s.stdout); out != "" {
				t.Errorf("the command ran: %q", out)
			}
			if code := exitCode(t, s); code != 127 {
				t.Errorf("helper exit status %d, want 127", code)
			}
		})
	}
}
