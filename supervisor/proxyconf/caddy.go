package proxyconf

import (
	"fmt"
	"io"
	"strings"
)

// caddy writes a Caddyfile (Caddy 2). Sites are plain http:// so that
// Caddy does not try to obtain certificates for them; put TLS in front
// or change the addresses.
func caddy(w io.Writer, p *plan) error {
	var b strings.Builder
	p.header(&b, "A Caddyfile for Caddy 2: import it from /etc/caddy/Caddyfile.")
	for _, vh := range p.vhosts {
		host := vh.host
		if host == "" && p.serverName != "_" {
			host = p.serverName
		}
		fmt.Fprintf(&b, "\nhttp://%s:%s {\n", host, p.listen.port)
		if p.listen.host != "" {
			fmt.Fprintf(&b, "\tbind %s\n", p.listen.host)
		}
		for _, r := range vh.routes {
			if r.location == "/" {
				b.WriteString("\thandle {\n")
			} else {
				fmt.Fprintf(&b, "\thandle %s* {\n", r.location)
			}
			target := r.up.addr
			if r.up.unix {
				target = "unix/" + target
			}
			// lb_try_duration retries a connect that failed, e.g. on a
			// full backlog while the service restarts; a request that
			// was sent is never retried.
			fmt.Fprintf(&b, "\t\treverse_proxy %s {\n\t\t\tlb_try_duration 5s\n\t\t}\n\t}\n", target)
		}
		b.WriteString("}\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
