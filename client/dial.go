// SPDX-License-Identifier: Apache-2.0

package client

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/udsvisor/udsvisor/api"
)

// defaultBusyWait is how long a client retries a control socket whose
// connection backlog is full before it gives up.
const defaultBusyWait = 5 * time.Second

// RootSocket returns the path of the root-only control socket next to
// the control socket at socket, or "" when there is no room for one (see
// api.RootSocket).
func RootSocket(socket string) string { return api.RootSocket(socket) }

// dial connects to udsvisor. Root goes through the root-only socket
// (RootSocket) while it answers, and through the control socket when
// there is none (an older udsvisor, or none running: the control socket
// then says which). A full backlog is retried with backoff for busyWait.
func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	if root := RootSocket(c.socket); root != "" && c.who.uid == 0 {
		conn, err := c.dialRetry(ctx, root)
		switch {
		case err == nil:
			return conn, nil
		case errors.Is(err, syscall.EAGAIN), ctx.Err() != nil:
			return nil, explainDial(root, err, c.who, c.busyWait)
		}
	}
	conn, err := c.dialRetry(ctx, c.socket)
	if err != nil {
		return nil, explainDial(c.socket, err, c.who, c.busyWait)
	}
	return conn, nil
}

// dialRetry connects to path, retrying for busyWait while its backlog is
// full: a Unix connect then fails at once with EAGAIN instead of waiting,
// and the server takes connections out of the backlog as it goes.
func (c *Client) dialRetry(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	giveUp := time.Now().Add(c.busyWait)
	delay := 5 * time.Millisecond
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		left := time.Until(giveUp)
		if err == nil || !errors.Is(err, syscall.EAGAIN) || left <= 0 {
			return conn, err
		}
		t := time.NewTimer(min(delay, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}
