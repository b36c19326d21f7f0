// SPDX-License-Identifier: Apache-2.0

//go:build linux

package privdrop

import (
	"errors"
	"io/fs"
	"syscall"
	"testing"
)

// TestWireErrors checks that helper errors keep their text and errno
// across the pipe. The reports are the shapes the C helper writes:
// fail_path, fail_sys, and failf with and without an errno.
func TestWireErrors(t *testing.T) {
	for _, tc := range []struct {
		report wireError
		want   string
		is     error
	}{
		{wireError{Op: "exec", Path: "/usr/bin/foo", Errno: syscall.EACCES}, "exec /usr/bin/foo: permission denied", fs.ErrPermission},
		{wireError{Op: "setuid", Path: "1001", Errno: syscall.EPERM}, "setuid 1001: operation not permitted", fs.ErrPermission},
		{wireError{Op: "setgroups", Errno: syscall.EPERM}, "setgroups: operation not permitted", syscall.EPERM},
		{wireError{Op: helperOp, Msg: "spec has an empty argv"}, "launch helper: spec has an empty argv", nil},
		{wireError{Op: helperOp, Msg: "socket fd 4", Errno: syscall.EBADF}, "launch helper: socket fd 4: bad file descriptor", syscall.EBADF},
	} {
		got := decodeHelperError(tc.report.encode())
		if got.Error() != tc.want {
			t.Errorf("round trip of %+v: %q, want %q", tc.report, got, tc.want)
		}
		if tc.is != nil && !errors.Is(got, tc.is) {
			t.Errorf("round trip of %+v: %v is not %v", tc.report, got, tc.is)
		}
	}
	if got := decodeHelperError([]byte("garbage")).Error(); got != `launch helper: unreadable failure report "garbage"` {
		t.Errorf("garbage report: %q", got)
	}
	good := wireError{Op: "setgroups", Errno: syscall.EPERM}.encode()
	for name, b := range map[string][]byte{
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(good[:len(good):len(good)], 0),
		"bad magic":      append([]byte{0}, good[1:]...),
		"empty op":       wireError{Errno: syscall.EPERM}.encode(),
	} {
		if err := decodeHelperError(b); err == nil || errors.Is(err, syscall.EPERM) {
			t.Errorf("%s report decoded as %v, want unreadable", name, err)
		}
	}
}
