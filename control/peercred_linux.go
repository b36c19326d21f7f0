// SPDX-License-Identifier: Apache-2.0

package control

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readPeer returns the kernel's record of who connected c: SO_PEERCRED for
// uid, gid and pid and SO_PEERGROUPS for the supplementary groups, all
// captured by the kernel at connect(2). Nothing is parsed from a string the
// client could shape, such as its bound address (snapd's dirty_sock,
// CVE-2019-7304). When the kernel lacks SO_PEERGROUPS (< 4.13), or
// noPeerGroups forces it for a test, the groups come from
// /proc/PID/status, which is read now rather than at connect and so is
// only a fallback.
func readPeer(c net.Conn, noPeerGroups bool) (peerCreds, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return peerCreds{}, fmt.Errorf("peer credentials: %T is not a socket", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return peerCreds{}, fmt.Errorf("peer credentials: %w", err)
	}
	var (
		p      peerCreds
		opErr  error
		groups []uint32
	)
	err = raw.Control(func(fd uintptr) {
		uc, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			opErr = os.NewSyscallError("getsockopt SO_PEERCRED", err)
			return
		}
		p = peerCreds{UID: uc.Uid, GID: uc.Gid, PID: uc.Pid}
		if noPeerGroups {
			opErr = unix.ENOPROTOOPT
			return
		}
		groups, opErr = peerGroups(int(fd))
	})
	if err != nil {
		return peerCreds{}, fmt.Errorf("peer credentials: %w", err)
	}
	switch {
	case opErr == nil:
		p.Groups = groups
	case errors.Is(opErr, unix.ENOPROTOOPT) && p.PID > 0:
		p.Groups, err = procGroups(int(p.PID))
		if err != nil {
			return peerCreds{}, fmt.Errorf("peer credentials of pid %d: %w", p.PID, err)
		}
	default:
		return peerCreds{}, fmt.Errorf("peer credentials: %w", opErr)
	}
	return p, nil
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
