// SPDX-License-Identifier: Apache-2.0

//go:build linux

package privdrop_test

import (
	"fmt"
	"os/exec"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// TestT10FDsWithoutCloseRange is TestT10FDs on a kernel without
// CLOSE_RANGE_CLOEXEC: ENOSYS before Linux 5.9, EINVAL before 5.11. A
// seccomp filter inherited from the forking thread makes the helper's
// close_range fail that way, so the helper must mark the leaked fds
// through its walk of /proc/self/fd instead.
func TestT10FDsWithoutCloseRange(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	for _, errno := range []unix.Errno{unix.ENOSYS, unix.EINVAL} {
		t.Run(unix.ErrnoName(errno), func(t *testing.T) {
			spec := probeSpec(t, u, 1, "web")
			files, targets := listeners(t, spec.Dir, "web")
			// Leaks that are not close-on-exec: one just above the
			// pipes, one well above.
			leakFDs(t)

			s, _ := mustStart(t, spec, files, launchOpts{deny: denyCloseRange(errno)})
			pid := s.cmd.Process.Pid
			want := map[int]string{0: "/dev/null", 1: s.stdoutPipe, 2: s.stderr.Name(), 3: targets[0]}
			got, err := testutil.ProcFDs(pid)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("/proc/%d/fd: %v, want exactly %v", pid, got, want)
			}
		})
	}
}

// denial makes one syscall fail with errno, in the thread that installs
// it and in the children it forks.
type denial struct {
	nr    uintptr
	errno unix.Errno
	// try makes the call in a way that would change nothing if it got
	// through, to check the filter.
	try func() error
}

// denyCloseRange makes close_range fail as on an older kernel.
func denyCloseRange(errno unix.Errno) *denial {
	return &denial{unix.SYS_CLOSE_RANGE, errno, func() error {
		// An empty range.
		return unix.CloseRange(^uint(0), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	}}
}

// startFiltered starts cmd from a thread of its own whose seccomp filter
// makes d's syscall fail; the child inherits the filter. The thread
// stays locked until the test ends, since Pdeathsig watches it, and then
// exits with its goroutine, taking the filter with it.
func startFiltered(t *testing.T, cmd *exec.Cmd, d denial) error {
	started := make(chan error, 1) // buffered: the goroutine never waits to send
	done := make(chan struct{})
	t.Cleanup(func() { close(done) }) // runs after launch's kill-and-reap
	go func() {
		runtime.LockOSThread() // never unlocked: the thread must not be reused
		if err := d.install(); err != nil {
			started <- err
			return
		}
		started <- cmd.Start()
		<-done
	}()
	return <-started
}

// install puts a seccomp filter on this thread that fails d's syscall
// with its errno and allows everything else, and checks it.
func (d denial) install() error {
	var arch uint32
	switch runtime.GOARCH {
	case "amd64":
		arch = unix.AUDIT_ARCH_X86_64
	case "arm64":
		arch = unix.AUDIT_ARCH_AARCH64
	case "386":
		arch = unix.AUDIT_ARCH_I386
	default:
		return fmt.Errorf("no seccomp arch for %s", runtime.GOARCH)
	}
	// seccomp_data: nr at offset 0, arch at 4.
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 4},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: arch, Jt: 0, Jf: 3},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: uint32(d.nr), Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(d.errno)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	// no_new_privs lets a thread without CAP_SYS_ADMIN install a
	// filter; the helper sets it anyway.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog)), 0, 0); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	runtime.KeepAlive(prog)
	if err := d.try(); err != d.errno {
		return fmt.Errorf("syscall %d under the filter: %v, want %v", d.nr, err, d.errno)
	}
	return nil
}
