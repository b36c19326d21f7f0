// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"context"
	"fmt"
	"slices"

	"github.com/udsvisor/udsvisor/internal/idname"
)

// peerCreds is who is at the other end of a control connection, as the kernel
// recorded it when the client connected.
type peerCreds struct {
	UID, GID uint32
	PID      int32
	// Groups are the supplementary groups.
	Groups []uint32
}

// inGroup reports whether gid is p's primary or a supplementary group.
func (p peerCreds) inGroup(gid int) bool {
	if gid < 0 {
		return false
	}
	return p.GID == uint32(gid) || slices.Contains(p.Groups, uint32(gid))
}

// access is what a route needs.
type access int

const (
	// accessRead: GET endpoints, allowed to root, control_group and
	// status_group.
	accessRead access = iota
	// accessWrite: everything that changes state, allowed to root and
	// control_group only.
	accessWrite
)

type peerKey struct{}

// withPeer returns ctx carrying p as the request's credentials. The
// server attaches the credentials it read at Accept this way; tests that
// drive Handler without a socket do the same.
func withPeer(ctx context.Context, p peerCreds) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// peerFrom returns the credentials attached to ctx.
func peerFrom(ctx context.Context) (peerCreds, bool) {
	p, ok := ctx.Value(peerKey{}).(peerCreds)
	return p, ok
}

// may reports whether p has access a. Root and control_group may do
// everything, status_group may read; nobody else may do anything, whatever
// the socket file's mode says (a loosened mode is the first gate failing,
// not a grant).
func (s *Server) may(p peerCreds, a access) bool {
	g := s.groups.Load()
	if p.UID == 0 || p.inGroup(g.control) {
		return true
	}
	return a == accessRead && p.inGroup(g.status)
}

// denial explains to p why the request needing a was refused.
func (s *Server) denial(p peerCreds, a access, method, path string) string {
	g := s.groups.Load()
	if a == accessWrite && p.inGroup(g.status) {
		return fmt.Sprintf("permission denied: uid %d may only read (group %s); %s %s needs root%s",
			p.UID, idname.Group(uint32(g.status)), method, path, g.orControlGroup())
	}
	msg := fmt.Sprintf("permission denied: uid %d is not root", p.UID)
	var names []string
	if g.control >= 0 {
		names = append(names, idname.Group(uint32(g.control)))
	}
	if g.status >= 0 {
		names = append(names, idname.Group(uint32(g.status)))
	}
	switch len(names) {
	case 1:
		msg += " and not in group " + names[0]
	case 2:
		msg += " and not in group " + names[0] + " or " + names[1]
	}
	return msg
}

func (g *groups) orControlGroup() string {
	if g.control < 0 {
		return ""
	}
	return " or group " + idname.Group(uint32(g.control))
}
