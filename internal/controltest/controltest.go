// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package controltest runs the real control server (package control) on
// a real Unix socket for the tests of its clients, with the fake
// supervisor of package fakesup behind it. It is apart from fakesup
// because control's own tests use the fake, and could not import a
// package that imports control.
package controltest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/udsvisor/udsvisor/client"
	"github.com/udsvisor/udsvisor/control"
	"github.com/udsvisor/udsvisor/internal/fakesup"
	"github.com/udsvisor/udsvisor/supervisor"
)

// Start serves the control API of a fake supervisor of services on a
// socket in a fresh directory until the test ends, and returns the
// socket's path and the fake.
func Start(t testing.TB, services ...supervisor.Status) (string, *fakesup.Supervisor) {
	t.Helper()
	// Not t.TempDir: a path named after a long test name may not fit a
	// socket address (107 bytes), the root-only socket's suffix included.
	dir, err := os.MkdirTemp("", "udsv-ctl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := fakesup.New(services...)
	sock := filepath.Join(dir, "control.sock")
	Serve(t, sock, f)
	return sock, f
}

// Serve serves the control API of b on a socket it creates at sock, and
// on the root-only socket next to it (client.RootSocket) as `udsvisor up`
// does, until the test ends. Root and the members of the test process's
// group may do everything, so that the tests also run unprivileged.
func Serve(t testing.TB, sock string, b control.Backend) {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var root net.Listener
	if path := client.RootSocket(sock); path != "" {
		if root, err = net.Listen("unix", path); err != nil {
			l.Close()
			t.Fatal(err)
		}
	}
	opts := control.Options{ControlGID: os.Getegid(), StatusGID: -1}
	if u, ok := b.(control.Upgrader); ok {
		opts.Upgrader = u
	}
	srv := control.New(b, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1) // Serve's result, read by the cleanup
	go func() { done <- srv.Serve(ctx, l, root) }()
	t.Cleanup(func() {
		cancel()
		// Serve bounds its own shutdown (30 s for requests in flight).
		if err := <-done; err != nil {
			t.Errorf("control server on %s: %v", sock, err)
		}
	})
}
