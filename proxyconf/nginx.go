// SPDX-License-Identifier: Apache-2.0

package proxyconf

import (
	"fmt"
	"io"
	"strings"
)

// nginxCopies is how often each socket is listed in its upstream. nginx
// never retries the server that just failed, only the next one, so a
// request in flight when its process is SIGKILLed is lost with a single
// line; listing the same socket again gives proxy_next_upstream somewhere
// to retry it (SECURITY-NOTES 0.15). Each retry first takes a cached
// keepalive connection, which after a kill leads to the dead process, so
// there must be more copies than cached connections: with keepalive 16
// and 3 copies, 5-18 of 50,000 requests failed under a SIGKILL every
// 300 ms (integration TestKillUnderLoad); with 8 and 10, none did.
const (
	nginxKeepalive = 8
	nginxCopies    = nginxKeepalive + 2
)

// nginxRetryWindow is proxy_next_upstream_timeout: no retry starts later
// than this after the request was first passed on. A kill is retried
// within milliseconds; a request that failed after running this long is
// not worth running again while the service restarts, and the cap keeps
// the copies from multiplying a long failure (issue 10, item 9).
const nginxRetryWindow = "10s"

// nginx writes a file for the http {} context.
func nginx(w io.Writer, p *plan) error {
	var b strings.Builder
	lines := []string{"For nginx's http {} context, e.g. /etc/nginx/conf.d/udsvisor.conf."}
	addr := p.listen.String()
	if p.listen.host == "" {
		addr = "port " + addr
	}
	lines = append(lines, p.hostlessNote(
		[]string{
			"The server of the routes without a host is the default_server of " + addr + ":",
			"it answers every Host that no other server_name matches. nginx refuses two",
			"default servers for one address: remove Debian's sites-enabled/default (its",
			"default_server is on port 80), or name the server with --server-name.",
		},
		[]string{
			"The routes without a host answer Host " + p.serverName + " only; other hosts go to",
			"nginx's default server for " + addr + " (Debian's default site, while it is enabled).",
		},
	)...)
	p.header(&b, lines...)
	fmt.Fprintf(&b, `
# WebSocket: only a WebSocket upgrade goes on (Upgrade: websocket, with
# "Connection: upgrade"); any other request without either, so that the
# upstream connection is kept alive, and so that no other protocol (h2c) is
# tunnelled past nginx's locations. A WebSocket silent for
# proxy_read_timeout (60s by default) is closed.
map $http_upgrade $udsvisor_upgrade {
    default       "";
    ~*^websocket$ websocket;
}

map $udsvisor_upgrade $udsvisor_connection {
    default upgrade;
    ""      "";
}

# The Host the client sent, port included; $host if it sent none (HTTP/1.0).
map $http_host $udsvisor_host {
    default $http_host;
    ""      $host;
}

# Each socket is listed %d times: nginx retries a failed request only on the
# next server, so a request whose process was killed is retried on the same
# socket (idempotent requests only; nginx never retries a POST that was sent).
# More copies than keepalive connections: after a kill, every cached
# connection leads to the dead process, and a retry takes those first.
# max_fails=0: a restart never marks the socket unavailable.
# A retry follows an error only (a refused connect, a full backlog, a
# connection lost before the answer), never a timeout, so a hung process is
# not sent the request again; and no retry starts later than %s after the
# first try.
`, nginxCopies, nginxRetryWindow)
	for i, up := range p.upstreams {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "upstream %s {\n", up.name)
		addr := up.addr
		if up.unix {
			addr = "unix:" + addr
		}
		for range nginxCopies {
			fmt.Fprintf(&b, "    server %s max_fails=0;\n", addr)
		}
		fmt.Fprintf(&b, "    keepalive %d;\n}\n", nginxKeepalive)
	}
	for _, vh := range p.vhosts {
		name, listen := vh.host, p.listen.String()
		if name == "" {
			name = p.serverName
			if p.catchAll() {
				name, listen = "_", listen+" default_server"
			}
		}
		fmt.Fprintf(&b, "\nserver {\n    listen %s;\n    server_name %s;\n", listen, name)
		for _, r := range vh.routes {
			fmt.Fprintf(&b, `
    location %s {
        proxy_pass http://%s;
        proxy_http_version 1.1;
        proxy_set_header Host $udsvisor_host;
        proxy_set_header Upgrade $udsvisor_upgrade;
        proxy_set_header Connection $udsvisor_connection;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_next_upstream error;
        proxy_next_upstream_timeout %s;
        proxy_next_upstream_tries %d;
    }
`, r.location, r.up.name, nginxRetryWindow, nginxCopies)
		}
		b.WriteString("}\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
