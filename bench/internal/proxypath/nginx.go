// SPDX-License-Identifier: Apache-2.0

//go:build linux

package proxypath

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/udsvisor/udsvisor/bench/internal/proc"
)

// keepaliveConns is the size of nginx's cache of idle upstream
// connections (per worker), as specified for this figure. It caps idle
// connections, not open ones: with wrk's 50 requests in flight nginx
// opens more and closes those that find the cache full, so about one
// request in ten still opens a connection (measured with nstat: 5,300
// upstream connects for 51,000 requests over TCP). A cache of 64 would
// remove that; 32 is what a deployment is more likely to run (the
// generated config uses 8).
const keepaliveConns = 32

// nginxWorkers is 1, not auto (2 here). The two vCPUs are the bound
// either way: wrk, nginx and the backend together keep both busy (about
// 30 %, 60 % and 80 % of a CPU), so a second worker adds no capacity,
// only one more process to schedule and a split of wrk's 50 connections
// between two workers that differs from run to run. With one worker
// every run has the same shape, and runs differ only by the transport.
const nginxWorkers = 1

// nginxMain is nginx's config around the server blocks, one per case: every file
// it writes inside its prefix directory, no access log (it would measure
// the disk), workers as www-data like Debian's nginx.
const nginxMain = `# Written by bench's proxypath part; removed with its directory.
user www-data;
worker_processes %[2]d;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
%[3]s}
`

// nginxServers writes one server block per case. Without keepalive
// proxy_pass names the backend directly: nginx speaks HTTP/1.0 with a new
// connection per request, as in the storm. With keepalive, nginx
// 1.22 needs all three of the upstream's keepalive, proxy_http_version 1.1
// and an empty Connection header, or it still closes every connection.
func (p *part) nginxServers() string {
	var b strings.Builder
	for _, c := range p.cases {
		// A Unix socket in proxy_pass ends with ":" (where a URI could
		// follow); in an upstream's server it does not.
		server, direct := p.tcpAddr, p.tcpAddr
		switch c.transport {
		case unixSocket:
			server, direct = "unix:"+p.sock, "unix:"+p.sock+":"
		case relayed:
			server, direct = "unix:"+p.relaySock, "unix:"+p.relaySock+":"
		}
		fmt.Fprintf(&b, "\n\t# %s\n", c)
		if !c.keepalive {
			fmt.Fprintf(&b, "\tserver {\n\t\tlisten 127.0.0.1:%d;\n\t\tlocation / { proxy_pass http://%s; }\n\t}\n", c.port, direct)
			continue
		}
		upstream := fmt.Sprintf("backend_%d", c.port)
		fmt.Fprintf(&b, "\tupstream %s {\n\t\tserver %s;\n\t\tkeepalive %d;\n\t}\n", upstream, server, keepaliveConns)
		fmt.Fprintf(&b, "\tserver {\n\t\tlisten 127.0.0.1:%d;\n\t\tlocation / {\n"+
			"\t\t\tproxy_pass http://%s;\n\t\t\tproxy_http_version 1.1;\n\t\t\tproxy_set_header Connection \"\";\n"+
			"\t\t}\n\t}\n", c.port, upstream)
	}
	return b.String()
}

// startNginx writes nginx's config and runs it in the foreground.
func (p *part) startNginx(ctx context.Context) error {
	prefix := filepath.Join(p.dir, "nginx")
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755); err != nil {
		return fmt.Errorf("nginx directory: %w", err)
	}
	conf := filepath.Join(prefix, "nginx.conf")
	text := fmt.Sprintf(nginxMain, prefix, nginxWorkers, p.nginxServers())
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return fmt.Errorf("nginx config: %w", err)
	}
	// -e: even the error log nginx opens before reading its config is
	// ours, not /var/log/nginx/error.log.
	cmd := exec.Command("nginx", "-p", prefix+"/", "-e", filepath.Join(prefix, "error.log"),
		"-c", conf, "-g", "daemon off;")
	var err error
	p.nginx, err = proc.Start("nginx", filepath.Join(prefix, "stderr.log"), cmd)
	if err != nil {
		return err
	}
	// Each port listens once the first answer comes back.
	client := tcpClient()
	defer client.CloseIdleConnections()
	for _, c := range p.cases {
		if _, err := waitAnswer(ctx, client, p.url(c), p.nginx, 0); err != nil {
			return fmt.Errorf("nginx on port %d (%s): %w\nnginx error log:\n%s", c.port, c, err, p.nginxErrors(20))
		}
	}
	ports := make([]string, len(p.cases))
	for i, c := range p.cases {
		ports[i] = strconv.Itoa(c.port)
	}
	p.env.Logf("proxypath: nginx (%d worker) on 127.0.0.1 ports %s", nginxWorkers, strings.Join(ports, ", "))
	return nil
}

// nginxErrors returns the last n lines of nginx's error log.
func (p *part) nginxErrors(n int) string {
	b, err := os.ReadFile(filepath.Join(p.dir, "nginx", "error.log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
