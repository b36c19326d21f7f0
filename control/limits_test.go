// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// TestT18SlowHeadersClosed: a client that never finishes its headers is
// disconnected after ReadHeaderTimeout and gives its slot back.
func TestT18SlowHeadersClosed(t *testing.T) {
	ts := startServer(t, newFake(), Options{ControlGID: -1, StatusGID: -1, MaxConns: 1}, 0, 0o600,
		func(s *Server) { s.readHeaderTimeout = 200 * time.Millisecond })
	c, err := net.Dial("unix", ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /v1/services HTTP/1.1\r\nHost: udsvisor\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	// The deadline only keeps a broken server from hanging the test; the
	// server closes the connection long before.
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if rest, err := io.ReadAll(c); err != nil {
		t.Fatalf("slow client: %v after %q; want the server to close the connection", err, rest)
	}
	// The only slot is free again.
	if code, body := ts.do(t, "GET", "/v1/services", ""); code != http.StatusOK {
		t.Errorf("after the slow client: %d %s", code, body)
	}
}

// TestT18ConnectionCap: with MaxConns connections open, the next client
// waits in the kernel backlog and is served once one of them closes.
func TestT18ConnectionCap(t *testing.T) {
	testutil.RequireCommand(t, "ss")
	ts := startServer(t, newFake(), Options{ControlGID: -1, StatusGID: -1, MaxConns: 2}, 0, 0o600,
		func(s *Server) { s.readHeaderTimeout = time.Minute })
	// Two clients each hold a keep-alive connection; the answers prove
	// that the server accepted both.
	holders := []*http.Client{ts.client(), ts.client()}
	for i, c := range holders {
		resp, err := c.Get("http://udsvisor/v1/services")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("holder %d: %d", i, resp.StatusCode)
		}
	}
	third := make(chan int, 1) // the request goroutine may finish after a failed test returned
	go func() {
		c := ts.client()
		defer c.CloseIdleConnections()
		resp, err := c.Get("http://udsvisor/v1/services")
		if err != nil {
			third <- -1
			return
		}
		resp.Body.Close()
		third <- resp.StatusCode
	}()
	// The kernel holds the third connection unaccepted.
	testutil.Eventually(t, 10*time.Second, func() error {
		if q := acceptQueue(t, ts); q != 1 {
			return fmt.Errorf("accept queue of %s is %d, want 1", ts.sock, q)
		}
		return nil
	})
	select {
	case code := <-third:
		t.Fatalf("third client served (%d) while %d connections were open", code, len(holders))
	default:
	}
	holders[0].CloseIdleConnections()
	if code := <-third; code != http.StatusOK {
		t.Errorf("third client: %d, want 200 once a slot freed", code)
	}
	holders[1].CloseIdleConnections()
}

// acceptQueue returns how many connections wait in the accept queue of
// the server's listening socket: the Recv-Q that ss reads from the kernel.
// ss shows the name the socket was bound to (a /proc/self/fd path, see
// package sockets), so the socket is found by its inode.
func acceptQueue(t *testing.T, ts *testServer) int {
	t.Helper()
	out, err := exec.Command("ss", "-xlnH").Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		// u_str LISTEN Recv-Q Send-Q path inode * 0
		f := strings.Fields(line)
		if len(f) < 6 || f[5] != ts.ino {
			continue
		}
		n, err := strconv.Atoi(f[2])
		if err != nil {
			t.Fatalf("ss Recv-Q in %q: %v", line, err)
		}
		return n
	}
	t.Fatalf("ss does not list socket inode %s:\n%s", ts.ino, out)
	return 0
}
