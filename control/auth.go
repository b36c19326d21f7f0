// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"context"
	"fmt"

	"github.com/udsvisor/udsvisor/internal/idname"
	"github.com/udsvisor/udsvisor/internal/peercred"
)

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
func withPeer(ctx context.Context, p peercred.Creds) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// peerFrom returns the credentials attached to ctx.
func peerFrom(ctx context.Context) (peercred.Creds, bool) {
	p, ok := ctx.Value(peerKey{}).(peercred.Creds)
	return p, ok
}

// may reports whether p has access a. Root and control_group may do
// everything, status_group may read; nobody else may do anything, whatever
// the socket file's mode says (a loosened mode is the first gate failing,
// not a grant).
func (s *Server) may(p peercred.Creds, a access) bool {
	g := s.groups.Load()
	if p.UID == 0 || p.InGroup(g.control) {
		return true
	}
	return a == accessRead && p.InGroup(g.status)
}

// denial explains to p why the request needing a was refused.
func (s *Server) denial(p peercred.Creds, a access, method, path string) string {
	g := s.groups.Load()
	if a == accessWrite && p.InGroup(g.status) {
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
