// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package unixhttp makes the HTTP clients of the benchmark that talk to
// a Unix socket: a backend's, or a supervisor's control socket.
package unixhttp

import (
	"context"
	"net"
	"net/http"
	"time"
)

// Client sends every request to the Unix socket sock, whatever host the
// URL names, and gives up on one after timeout (0: never). It keeps
// idle connections for the next request.
func Client(sock string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: transport(sock)}
}

// Fresh is Client with a new connection for every request, so that each
// reaches whichever process accepts on sock by then.
func Fresh(sock string, timeout time.Duration) *http.Client {
	t := transport(sock)
	t.DisableKeepAlives = true
	return &http.Client{Timeout: timeout, Transport: t}
}

func transport(sock string) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}
}
