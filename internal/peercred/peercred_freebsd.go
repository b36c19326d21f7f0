// SPDX-License-Identifier: Apache-2.0

package peercred

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// read takes LOCAL_PEERCRED, which the kernel fills at connect(2). Its
// group list starts with the effective gid and holds at most
// XU_NGROUPS (16) groups: a peer in more supplementary groups is seen in
// its first 15 only.
func read(fd int, _ Options) (Creds, error) {
	x, err := unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if err != nil {
		return Creds{}, os.NewSyscallError("getsockopt LOCAL_PEERCRED", err)
	}
	n := int(x.Ngroups)
	if n < 1 || n > len(x.Groups) {
		return Creds{}, fmt.Errorf("getsockopt LOCAL_PEERCRED: %d groups, want 1 to %d", n, len(x.Groups))
	}
	return Creds{
		UID:    x.Uid,
		GID:    x.Groups[0],
		PID:    xucredPid(x),
		Groups: append([]uint32(nil), x.Groups[1:n]...),
	}, nil
}

// xucredPid reads cr_pid, which FreeBSD 13 put in a union at the end of
// struct xucred where x/sys has only a blank pointer field; older kernels
// leave it zero.
func xucredPid(x *unix.Xucred) int32 {
	union := unsafe.Add(unsafe.Pointer(x), unix.SizeofXucred-int(unsafe.Sizeof(uintptr(0))))
	return *(*int32)(union)
}
