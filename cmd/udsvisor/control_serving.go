// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"sync"

	"go.uber.org/zap"

	"github.com/udsvisor/udsvisor/control"
	"github.com/udsvisor/udsvisor/sockets"
)

// controlServing serves the control API on udsvisor's control sockets,
// and stops and starts again around an upgrade without closing them:
// clients that come meanwhile wait in the backlog.
type controlServing struct {
	srv       *control.Server
	ctl, root *sockets.Listener // root is nil without a root-only socket
	log       *zap.Logger
	ctx       context.Context // ends the serving for good

	mu     sync.Mutex
	cancel context.CancelFunc // of the serving under way; nil if none
	done   chan error
}

// start serves until stop or ctx is done.
func (c *controlServing) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil || c.ctx.Err() != nil {
		return
	}
	// net.FileListener takes a dup, which Serve closes; the socket stays.
	l, err := net.FileListener(c.ctl.File())
	if err != nil {
		c.log.Error("control API not served", zap.Error(fmt.Errorf("control socket %s: %w", c.ctl.Spec().Path, err)))
		return
	}
	var rootL net.Listener // nil without a root-only socket
	if c.root != nil {
		if rootL, err = net.FileListener(c.root.File()); err != nil {
			c.log.Error("root-only control socket not served", zap.String("socket", c.root.Spec().Path), zap.Error(err))
		}
	}
	ctx, cancel := context.WithCancel(c.ctx)
	done := make(chan error, 1) // Serve returns once
	c.cancel, c.done = cancel, done
	go func() { done <- c.srv.Serve(ctx, l, rootL) }()
}

// stop ends the serving under way once the requests in flight are
// answered, and returns Serve's error.
func (c *controlServing) stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel == nil {
		return nil
	}
	c.cancel()
	err := <-c.done
	c.cancel, c.done = nil, nil
	return err
}
