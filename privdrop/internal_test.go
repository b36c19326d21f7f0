package privdrop

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCloseOnExecScan checks the fallback for kernels without
// CLOSE_RANGE_CLOEXEC (before 5.11) on this process's own fds.
func TestCloseOnExecScan(t *testing.T) {
	fd, err := syscall.Open("/dev/null", syscall.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := closeOnExecScan(fd); err != nil {
		t.Fatal(err)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("fd %d is not close-on-exec after the scan", fd)
	}
}

// TestWireErrors checks that helper errors keep their text and errno
// across the pipe.
func TestWireErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
		is   error
	}{
		{&fs.PathError{Op: "exec", Path: "/usr/bin/foo", Err: syscall.EACCES}, "exec /usr/bin/foo: permission denied", fs.ErrPermission},
		{&fs.PathError{Op: "setuid", Path: "1001", Err: syscall.EPERM}, "setuid 1001: operation not permitted", fs.ErrPermission},
		{os.NewSyscallError("setgroups", syscall.EPERM), "setgroups: operation not permitted", syscall.EPERM},
		{errors.New("spec has an empty argv"), "launch helper: spec has an empty argv", nil},
	} {
		got := decodeHelperError(encodeFailure(tc.err))
		if got.Error() != tc.want {
			t.Errorf("round trip of %v: %q, want %q", tc.err, got, tc.want)
		}
		if tc.is != nil && !errors.Is(got, tc.is) {
			t.Errorf("round trip of %v: %v is not %v", tc.err, got, tc.is)
		}
	}
	if got := decodeHelperError([]byte("garbage")).Error(); got != `launch helper: unreadable failure report "garbage"` {
		t.Errorf("garbage report: %q", got)
	}
}
