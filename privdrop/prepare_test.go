// SPDX-License-Identifier: Apache-2.0

//go:build linux

package privdrop_test

import (
	"math"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/privdrop"
)

// TestPrepareRejects checks the last-line validation: nothing is forked
// for a spec the helper could not carry out faithfully.
func TestPrepareRejects(t *testing.T) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	ok := func() *privdrop.Spec {
		return &privdrop.Spec{Path: "/bin/true", Args: []string{"true"}, Env: []string{"A=1"}, Dir: "/", UID: 1000, GID: 1000}
	}
	for _, tc := range []struct {
		name  string
		edit  func(*privdrop.Spec)
		files []*os.File
		want  string
	}{
		{"relative path", func(s *privdrop.Spec) { s.Path = "bin/true" }, nil, `path "bin/true" is not absolute`},
		{"empty argv", func(s *privdrop.Spec) { s.Args = nil }, nil, "empty argv"},
		{"relative dir", func(s *privdrop.Spec) { s.Dir = "srv" }, nil, `working directory "srv" is not absolute`},
		{"uid -1", func(s *privdrop.Spec) { s.UID = math.MaxUint32 }, nil, "reserved id -1"},
		{"umask", func(s *privdrop.Spec) { s.Umask = 0o1022 }, nil, "not a permission mask"},
		{"fd count", func(s *privdrop.Spec) { s.NumFDs = 2 }, []*os.File{devnull}, "NumFDs is 2 but 1 files"},
		{"nil fd", func(s *privdrop.Spec) { s.NumFDs = 1 }, []*os.File{nil}, "socket 0 is nil"},
		{"NUL in argv", func(s *privdrop.Spec) { s.Args = []string{"a\x00b"} }, nil, "NUL"},
		{"env without =", func(s *privdrop.Spec) { s.Env = []string{"FOO"} }, nil, `"FOO" is not KEY=VALUE`},
		{"LISTEN_PID", func(s *privdrop.Spec) { s.Env = []string{"LISTEN_PID=1"} }, nil, "sets LISTEN_PID"},
		{"LISTEN_PIDFDID", func(s *privdrop.Spec) { s.Env = []string{"LISTEN_PIDFDID=1"} }, nil, "sets LISTEN_PIDFDID"},
		{"unknown rlimit", func(s *privdrop.Spec) { s.Rlimits = []privdrop.Rlimit{{Resource: 16}} }, nil, "unknown resource limit 16"},
		{"negative rlimit", func(s *privdrop.Spec) { s.Rlimits = []privdrop.Rlimit{{Resource: -1}} }, nil, "unknown resource limit -1"},
		{"soft above hard", func(s *privdrop.Spec) {
			s.Rlimits = []privdrop.Rlimit{{Resource: unix.RLIMIT_NOFILE, Cur: 2048, Max: 1024}}
		}, nil, "RLIMIT_NOFILE: soft limit 2048 is above the hard limit 1024"},
		{"rlimit twice", func(s *privdrop.Spec) {
			s.Rlimits = []privdrop.Rlimit{{Resource: unix.RLIMIT_CORE}, {Resource: unix.RLIMIT_CORE}}
		}, nil, "RLIMIT_CORE is set twice"},
		{"unknown capability", func(s *privdrop.Spec) { s.AmbientCaps = []uintptr{unix.CAP_LAST_CAP + 1} }, nil, "unknown capability"},
		{"capability twice", func(s *privdrop.Spec) {
			s.AmbientCaps = []uintptr{unix.CAP_NET_RAW, unix.CAP_NET_RAW}
		}, nil, "capability 13 is listed twice"},
		{"capabilities for root", func(s *privdrop.Spec) {
			s.UID = 0
			s.AmbientCaps = []uintptr{unix.CAP_NET_BIND_SERVICE}
		}, nil, "ambient capabilities for uid 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok()
			tc.edit(s)
			l, err := privdrop.Prepare("", s, tc.files, nil, nil)
			if err == nil {
				l.Abort()
				t.Fatalf("Prepare accepted %+v", s)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "launch ") {
				t.Errorf("Prepare: %q, want launch ...%s...", err, tc.want)
			}
		})
	}
}

// TestPrepareCmd checks the shape of the helper's command: what the
// supervisor relies on when it starts it.
func TestPrepareCmd(t *testing.T) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	spec := &privdrop.Spec{Path: "/bin/true", Args: []string{"true"}, UID: 1000, GID: 1000, NumFDs: 1}
	l, err := privdrop.Prepare("", spec, []*os.File{devnull}, nil, devnull)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Abort()
	c := l.Cmd()
	if c.Path != "/proc/self/exe" || !slices.Equal(c.Args, []string{"/proc/self/exe", privdrop.HelperArg}) {
		t.Errorf("Path %q Args %q", c.Path, c.Args)
	}
	if !slices.Equal(c.Env, []string{"_UDSVISOR_SPEC_FD=4", "_UDSVISOR_ERR_FD=5"}) {
		t.Errorf("Env %q: want only the two pipe fds", c.Env)
	}
	if len(c.ExtraFiles) != 3 || c.ExtraFiles[0] != devnull {
		t.Errorf("ExtraFiles %v: want the socket, then the two pipes", c.ExtraFiles)
	}
	if c.Stdin != nil || c.Stdout != nil || c.Stderr != devnull {
		t.Errorf("Stdin %v Stdout %v Stderr %v", c.Stdin, c.Stdout, c.Stderr)
	}
	if a := c.SysProcAttr; a == nil || !a.Setsid || a.Setpgid || a.Pdeathsig != syscall.SIGKILL || a.Credential != nil {
		t.Errorf("SysProcAttr %+v: want Setsid, Pdeathsig SIGKILL, no credential", a)
	}
}
