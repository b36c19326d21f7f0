// SPDX-License-Identifier: Apache-2.0

//go:build linux || freebsd

// Package peercred reads who is at the other end of a Unix socket
// connection, as the kernel recorded it: SO_PEERCRED and SO_PEERGROUPS on
// Linux, LOCAL_PEERCRED on FreeBSD. Nothing is parsed from a string the
// client could shape, such as its bound address (snapd's dirty_sock,
// CVE-2019-7304).
package peercred

import (
	"fmt"
	"net"
	"slices"
	"syscall"
)

// Creds is the peer of a Unix socket connection.
type Creds struct {
	UID, GID uint32
	// PID is 0 where the kernel does not say (FreeBSD before 13).
	PID int32
	// Groups are the supplementary groups.
	Groups []uint32
}

// InGroup reports whether gid is c's primary or a supplementary group.
func (c Creds) InGroup(gid int) bool {
	if gid < 0 {
		return false
	}
	return c.GID == uint32(gid) || slices.Contains(c.Groups, uint32(gid))
}

// Options change how Read gets the groups, for tests.
type Options struct {
	// NoPeerGroups makes Linux behave as a kernel without SO_PEERGROUPS
	// (< 4.13): the groups come from /proc/PID/status.
	NoPeerGroups bool
}

// Read returns the credentials of c's peer, which must be a Unix socket
// connection.
func Read(c net.Conn, opts Options) (Creds, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return Creds{}, fmt.Errorf("peer credentials: %T is not a socket", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return Creds{}, fmt.Errorf("peer credentials: %w", err)
	}
	var (
		cr    Creds
		opErr error
	)
	if err := raw.Control(func(fd uintptr) { cr, opErr = read(int(fd), opts) }); err != nil {
		return Creds{}, fmt.Errorf("peer credentials: %w", err)
	}
	if opErr != nil {
		return Creds{}, fmt.Errorf("peer credentials: %w", opErr)
	}
	return cr, nil
}
