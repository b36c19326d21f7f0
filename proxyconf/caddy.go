// SPDX-License-Identifier: Apache-2.0

package proxyconf

import (
	"fmt"
	"io"
	"strings"
)

// caddyTryDuration is lb_try_duration. Caddy 2.6 tries a request again,
// every lb_try_interval (250 ms), for this long after it arrived: always
// when the connect failed (a full backlog while the service restarts),
// and for a GET also when the connection broke before the answer (the
// default lb_retry_match); any other method, once sent, is not sent
// again (reverseproxy.go, tryAgain).
const caddyTryDuration = "5s"

// caddy writes a Caddyfile (Caddy 2). Sites are plain http:// so that
// Caddy does not try to obtain certificates for them; put TLS in front
// or change the addresses.
func caddy(w io.Writer, p *plan) error {
	var b strings.Builder
	p.header(&b,
		"A Caddyfile for Caddy 2: import it from /etc/caddy/Caddyfile.",
		"Caddy tries a request again for "+caddyTryDuration+" (lb_try_duration) when its connect failed",
		"(a full backlog while the service restarts), and a GET also when the",
		"connection broke before the answer; other methods are never sent twice.",
		"X-Real-IP is the peer's address; Caddy sets X-Forwarded-For and -Proto and",
		"passes WebSocket upgrades on by itself.")
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
			// Without header_up, a client's own X-Real-IP reaches the
			// service unchanged (issue 10, item 10).
			fmt.Fprintf(&b, "\t\treverse_proxy %s {\n\t\t\theader_up X-Real-IP {remote_host}\n\t\t\tlb_try_duration %s\n\t\t}\n\t}\n", target, caddyTryDuration)
		}
		b.WriteString("}\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
