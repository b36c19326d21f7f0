// SPDX-License-Identifier: Apache-2.0

//go:build linux

package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/integration/internal/websocket"
	"github.com/udsvisor/udsvisor/internal/testutil"
	"github.com/udsvisor/udsvisor/internal/testutil/testapp"
)

// fronts are the four proxies `udsvisor proxy` writes for: the program
// that must be installed, and how a test runs it on a generated config
// that listens on addr.
var fronts = []struct {
	kind, bin string
	start     func(t *testing.T, generated, addr string)
}{
	{"nginx", "/usr/sbin/nginx", func(t *testing.T, generated, addr string) { startNginx(t, generated, addr) }},
	{"apache", "/usr/sbin/apache2", startApache},
	{"caddy", "/usr/bin/caddy", startCaddy},
	{"haproxy", "/usr/sbin/haproxy", func(t *testing.T, generated, addr string) { startHAProxy(t, generated, addr, "") }},
}

// socketGroup is the group a socket needs for kind's workers as Debian
// runs them: www-data for nginx and Apache, and for Caddy too (Debian's
// package puts caddy in www-data); HAProxy drops every group but its
// own.
func socketGroup(kind string) string {
	if kind == "haproxy" {
		return "haproxy"
	}
	return "www-data"
}

// generateProxy is `udsvisor proxy KIND -c cfgFile --listen listen
// --strict ARGS...`: the config, which --strict only prints if the
// proxy's default user can reach every socket.
func generateProxy(t *testing.T, kind, cfgFile, listen string, args ...string) string {
	t.Helper()
	cmd := exec.Command(built.udsvisor, append([]string{"proxy", kind, "-c", cfgFile, "--listen", listen, "--strict"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("udsvisor proxy %s: %v\n%s", kind, err, stderr.String())
	}
	return stdout.String()
}

// getHeaders sends GET url with Host host (unless "") and the headers in
// hdr through the proxy, and decodes testapp's report of what reached it.
func getHeaders(url, host string, hdr map[string]string) (testapp.Forwarded, error) {
	var f testapp.Forwarded
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return f, err
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		return f, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return f, fmt.Errorf("GET %s (Host %q): %s %v\n%s", url, req.Host, resp.Status, err, body)
	}
	if err := json.Unmarshal(body, &f); err != nil {
		return f, fmt.Errorf("GET %s: %w in %q", url, err, body)
	}
	return f, nil
}

// statusFor sends GET url with Host host and returns the answer's status.
func statusFor(t *testing.T, url, host string) int {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", url, host, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// wsEcho opens a WebSocket through the proxy at addr on path, sends msg
// and returns what came back (testapp's /ws answers "echo: " + msg),
// then closes the WebSocket the way RFC 6455 asks.
func wsEcho(addr, path, msg string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	key := websocket.NewKey()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr, key)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "", fmt.Errorf("handshake: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return "", fmt.Errorf("handshake: %s, want 101:\n%s", resp.Status, body)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), websocket.AcceptKey(key); got != want {
		return "", fmt.Errorf("handshake: Sec-WebSocket-Accept %q, want %q", got, want)
	}
	if err := websocket.WriteFrame(c, websocket.OpText, []byte(msg), true); err != nil {
		return "", err
	}
	op, payload, err := websocket.ReadFrame(br)
	if err != nil {
		return "", fmt.Errorf("read the echo: %w", err)
	}
	if op != websocket.OpText {
		return "", fmt.Errorf("echo has opcode %#x, want text", op)
	}
	if err := websocket.WriteFrame(c, websocket.OpClose, nil, true); err != nil {
		return "", err
	}
	if op, _, err := websocket.ReadFrame(br); err != nil || op != websocket.OpClose {
		return "", fmt.Errorf("close: opcode %#x, %v; want the close echoed", op, err)
	}
	return string(payload), nil
}

// freePort6 returns a port that nothing listens on at [::] now.
func freePort6(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp6", "[::]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Issue 10, item 8: udsvisor binds [::] with IPV6_V6ONLY, so a socket on
// [::] takes no IPv4 connection; every proxy must reach it on [::1], and
// a socket on 0.0.0.0 on 127.0.0.1, through the config `udsvisor proxy`
// wrote.
func TestProxiesReachWildcardTCPSockets(t *testing.T) {
	testutil.EnsureUser(t, "udsv-app")
	v4 := freePort(t)
	_, v4port, _ := net.SplitHostPort(v4)
	s := startStack(t, fmt.Sprintf(`
[services.wild]
command = ["$APP"]
user = "udsv-app"
[[services.wild.sockets]]
name = "v6"
listen = "[::]:%d"
public = true
[[services.wild.sockets]]
name = "v4"
listen = "0.0.0.0:%s"
public = true
[[services.wild.proxy]]
location = "/v6/"
socket = "v6"
[[services.wild.proxy]]
location = "/v4/"
socket = "v4"
`, freePort6(t), v4port))
	for _, f := range fronts {
		t.Run(f.kind, func(t *testing.T) {
			testutil.RequireCommand(t, f.bin)
			addr := freePort(t)
			f.start(t, generateProxy(t, f.kind, s.cfg, addr), addr)
			for _, want := range []string{"v6", "v4"} {
				a, err := tryFetch("http://" + addr + "/" + want + "/x")
				if err != nil {
					t.Errorf("through %s to the socket on %s: %v", f.kind, want, err)
				} else if a.Socket != want {
					t.Errorf("GET /%s/x served on socket %q", want, a.Socket)
				}
			}
		})
	}
}

// Issue 10, items 9 and 10: through every proxy, the app sees the Host
// the client sent (port included), X-Real-IP from the peer address
// whatever the client claims (T32), X-Forwarded-For ending in the peer,
// no "Connection: upgrade" on a plain request (so that nginx keeps the
// upstream connection alive) nor on an h2c one, and a WebSocket works
// end to end.
func TestT32ProxiesForwardHeadersAndWebSockets(t *testing.T) {
	for _, f := range fronts {
		t.Run(f.kind, func(t *testing.T) {
			testutil.RequireCommand(t, f.bin)
			s := appStack(t, socketGroup(f.kind))
			addr := freePort(t)
			f.start(t, generateProxy(t, f.kind, s.cfg, addr), addr)

			got, err := getHeaders("http://"+addr+"/headers", "", map[string]string{
				"X-Real-IP":       "203.0.113.7",
				"X-Forwarded-For": "203.0.113.8",
			})
			if err != nil {
				t.Fatal(err)
			}
			if got.Socket != "http" {
				t.Errorf("served on socket %q, want http", got.Socket)
			}
			if got.Host != addr {
				t.Errorf("Host %q reached the app, want %q as the client sent it", got.Host, addr)
			}
			if got.XRealIP != "127.0.0.1" {
				t.Errorf("X-Real-IP %q reached the app, want the peer 127.0.0.1 (the client sent 203.0.113.7)", got.XRealIP)
			}
			if !strings.HasSuffix(got.XForwardedFor, "127.0.0.1") {
				t.Errorf("X-Forwarded-For %q does not end in the peer 127.0.0.1", got.XForwardedFor)
			}
			if strings.Contains(strings.ToLower(got.Connection), "upgrade") || got.Upgrade != "" {
				t.Errorf("a plain request reached the app with Connection %q, Upgrade %q", got.Connection, got.Upgrade)
			}

			// Only a WebSocket upgrade goes through nginx and Apache: an
			// h2c upgrade would open a tunnel past the proxy's routing
			// ("h2c smuggling"). Caddy and HAProxy decide this themselves.
			if f.kind == "nginx" || f.kind == "apache" {
				got, err := getHeaders("http://"+addr+"/headers", "", map[string]string{
					"Upgrade": "h2c", "Connection": "Upgrade, HTTP2-Settings", "HTTP2-Settings": "AAMAAABkAAQCAAAAAAIAAAAA",
				})
				if err != nil {
					t.Errorf("an h2c upgrade request: %v", err)
				} else if got.Upgrade != "" || strings.Contains(strings.ToLower(got.Connection), "upgrade") {
					t.Errorf("an h2c upgrade reached the app: Upgrade %q, Connection %q", got.Upgrade, got.Connection)
				}
			}

			msg := "hello through " + f.kind
			if echo, err := wsEcho(addr, "/ws", msg); err != nil {
				t.Errorf("WebSocket through %s: %v", f.kind, err)
			} else if echo != "echo: "+msg {
				t.Errorf("WebSocket echo %q, want %q", echo, "echo: "+msg)
			}
			// The connection the WebSocket used is not handed to the
			// next plain request with its upgrade headers.
			if got, err := getHeaders("http://"+addr+"/headers", "", nil); err != nil {
				t.Errorf("after the WebSocket: %v", err)
			} else if strings.Contains(strings.ToLower(got.Connection), "upgrade") {
				t.Errorf("after the WebSocket, a plain request reached the app with Connection %q", got.Connection)
			}
		})
	}
}
