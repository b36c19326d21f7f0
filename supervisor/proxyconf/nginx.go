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

// nginx writes a file for the http {} context.
func nginx(w io.Writer, p *plan) error {
	var b strings.Builder
	p.header(&b, "For nginx's http {} context, e.g. /etc/nginx/conf.d/udsvisor.conf.")
	fmt.Fprintf(&b, `
# Each socket is listed %d times: nginx retries a failed request only on the
# next server, so a request whose process was killed is retried on the same
# socket (idempotent requests only; nginx never retries a POST that was sent).
# More copies than keepalive connections: after a kill, every cached
# connection leads to the dead process, and a retry takes those first.
# max_fails=0: a restart never marks the socket unavailable.
`, nginxCopies)
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
	serverName := p.serverName
	if serverName == "" {
		serverName = "_"
	}
	for _, vh := range p.vhosts {
		name := vh.host
		if name == "" {
			name = serverName
		}
		fmt.Fprintf(&b, "\nserver {\n    listen %s;\n    server_name %s;\n", p.listen, name)
		for _, r := range vh.routes {
			fmt.Fprintf(&b, `
    location %s {
        proxy_pass http://%s;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries %d;
    }
`, r.location, r.up.name, nginxCopies)
		}
		b.WriteString("}\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
