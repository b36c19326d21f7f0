// SPDX-License-Identifier: Apache-2.0

//go:build linux

package storm

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/udsvisor/udsvisor/bench/internal/peer"
	"github.com/udsvisor/udsvisor/bench/internal/proc"
)

// nginx is a private nginx: its own config, pid file, logs and temp
// paths in a scratch directory, listening on a free loopback port.
type nginx struct {
	dir   string
	addr  string // 127.0.0.1:PORT
	child *proc.Child
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// newNginx prepares dir and picks the port; the config's http block is
// completed by start.
func newNginx(dir string) (*nginx, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("nginx: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return &nginx{dir: dir, addr: addr}, nil
}

// directServer is the plain server block of the storm: every request to
// the one Unix socket, a new upstream connection each time (no upstream
// keepalive), no retry elsewhere since there is no elsewhere.
func (n *nginx) directServer(socket string) string {
	return fmt.Sprintf(`    server {
        listen %s;
        location / {
            proxy_pass http://unix:%s:;
        }
    }
`, n.addr, socket)
}

// start writes the config around httpBody (server blocks, or an
// include) and runs nginx in the foreground. Workers run as root, so
// that every peer's socket is reachable whatever its owner and mode.
func (n *nginx) start(httpBody string) error {
	tmp := filepath.Join(n.dir, "tmp")
	conf := fmt.Sprintf(`user root;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
%[3]s}
`, n.dir, tmp, httpBody)
	path := filepath.Join(n.dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	p, err := peer.Spawn(filepath.Join(n.dir, "stderr.log"), nil,
		"nginx", "-e", filepath.Join(n.dir, "error.log"), "-c", path, "-g", "daemon off;")
	if err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	n.child = p
	return nil
}

// waitOK polls GET / until it answers 200: nginx listens and the
// backend serves.
func (n *nginx) waitOK(ctx context.Context, limit time.Duration) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		if err := n.child.Exited(); err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
		resp, err := client.Get("http://" + n.addr + "/")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("nginx on %s: no 200 within %v (last: %s)", n.addr, limit, last)
}

func (n *nginx) stop() error {
	if n.child == nil {
		return nil
	}
	return n.child.Kill()
}

// upstreamErrors counts nginx's upstream errors in its error log by
// cause: what the proxy saw when a request failed or was retried.
func (n *nginx) upstreamErrors() string {
	b, err := os.ReadFile(filepath.Join(n.dir, "error.log"))
	if err != nil {
		return ""
	}
	causes := []struct{ match, name string }{
		{"(111: Connection refused)", "refused"},
		{"(2: No such file or directory)", "no socket file"},
		{"(11: Resource temporarily unavailable)", "backlog full"},
		{"(104: Connection reset by peer)", "reset"},
		{"(32: Broken pipe)", "broken pipe"},
		{"prematurely closed", "closed early"},
		{"timed out", "timed out"},
	}
	counts := map[string]int{}
	other := ""
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "upstream") {
			continue
		}
		name := "other"
		for _, c := range causes {
			if strings.Contains(line, c.match) {
				name = c.name
				break
			}
		}
		if name == "other" && other == "" {
			_, other, _ = strings.Cut(line, "]") // after the date and level
			other = fmt.Sprintf(" (other: %.160s)", strings.TrimSpace(other))
		}
		counts[name]++
	}
	var parts []string
	for name, c := range counts {
		parts = append(parts, fmt.Sprintf("%s %d", name, c))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ") + other
}
