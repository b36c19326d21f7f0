// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"errors"
	"fmt"

	"github.com/udsvisor/udsvisor/client"
	"github.com/udsvisor/udsvisor/sockets"
)

// ErrNoRoomForRootSocket is returned by BindRoot when the control
// socket's path is too long for the root-only socket's name: udsvisor
// then runs without it, and root's ctl uses the control socket.
var ErrNoRoomForRootSocket = errors.New("the control socket's path leaves no room for the root-only socket (107 bytes at most)")

// BindRoot creates the root-only control socket that goes with the
// control socket at socket: client.RootSocket(socket), root:root 0600,
// in the control socket's directory, by the same safe path as every
// socket (package sockets). Only root can connect to it, so no other
// user can take its connection slots or fill its backlog, however the
// control socket is flooded (T28); Serve serves it with the same API.
// Bind the control socket first: a live control socket means another
// udsvisor runs, and its root-only socket must be left alone.
func BindRoot(socket string) (*sockets.Listener, error) {
	path := client.RootSocket(socket)
	if path == "" {
		return nil, fmt.Errorf("control socket %s: %w", socket, ErrNoRoomForRootSocket)
	}
	return sockets.Bind(sockets.Spec{Path: path, UID: 0, GID: 0, Mode: 0o600, DirMode: 0o755, Backlog: 128})
}
