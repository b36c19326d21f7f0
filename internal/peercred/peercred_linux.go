// SPDX-License-Identifier: Apache-2.0

package peercred

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// read takes uid, gid and pid from SO_PEERCRED and the supplementary
// groups from SO_PEERGROUPS, all captured by the kernel at connect(2).
// When the kernel lacks SO_PEERGROUPS (< 4.13), or opts say so for a
// test, the groups come from /proc/PID/status, which is read now rather
// than at connect and so is only a fallback.
func read(fd int, opts Options) (Creds, error) {
	uc, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return Creds{}, os.NewSyscallError("getsockopt SO_PEERCRED", err)
	}
	cr := Creds{UID: uc.Uid, GID: uc.Gid, PID: uc.Pid}
	err = unix.ENOPROTOOPT
	if !opts.NoPeerGroups {
		cr.Groups, err = peerGroups(fd)
	}
	switch {
	case err == nil:
		return cr, nil
	case errors.Is(err, unix.ENOPROTOOPT) && cr.PID > 0:
		if cr.Groups, err = procGroups(int(cr.PID)); err != nil {
			return Creds{}, fmt.Errorf("groups of pid %d: %w", cr.PID, err)
		}
		return cr, nil
	}
	return Creds{}, err
}

// peerGroups reads SO_PEERGROUPS with a raw getsockopt: x/sys has no typed
// wrapper, and GetsockoptString would cut the gid array at a zero byte.
// The kernel answers ERANGE with the size it needs when the buffer is too
// small.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 64)
	for {
		size := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd),
			unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch {
		case errno == 0:
			return buf[:size/4], nil
		case errno == unix.ERANGE && int(size/4) > len(buf):
			buf = make([]uint32, size/4)
		default:
			return nil, os.NewSyscallError("getsockopt SO_PEERGROUPS", errno)
		}
	}
}

// procGroups returns the supplementary groups on the Groups line of
// /proc/PID/status.
func procGroups(pid int) ([]uint32, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Groups:")
		if !ok {
			continue
		}
		var gids []uint32
		for _, field := range strings.Fields(rest) {
			g, err := strconv.ParseUint(field, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("parse %s Groups: %w", f.Name(), err)
			}
			gids = append(gids, uint32(g))
		}
		return gids, nil
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%s has no Groups line", f.Name())
}
