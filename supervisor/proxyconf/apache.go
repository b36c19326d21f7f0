package proxyconf

import (
	"fmt"
	"io"
	"strings"
)

// apache writes VirtualHosts for Apache 2.4 (2.4.7 or later for unix:
// backends).
func apache(w io.Writer, p *plan) error {
	var b strings.Builder
	p.header(&b,
		"Needs mod_proxy, mod_proxy_http and mod_headers: a2enmod proxy proxy_http headers",
		"Install it as /etc/apache2/sites-available/udsvisor.conf, then a2ensite udsvisor.")
	vhostAddr := p.listen.String()
	if p.listen.host == "" {
		vhostAddr = "*:" + p.listen.port
	}
	if p.listen.port != "80" || p.listen.host != "" {
		// Debian's ports.conf already has Listen 80, and a second one
		// for the same address is a startup error.
		fmt.Fprintf(&b, "\nListen %s\n", p.listen)
	}
	for _, vh := range p.vhosts {
		fmt.Fprintf(&b, "\n<VirtualHost %s>\n", vhostAddr)
		switch {
		case vh.host != "":
			fmt.Fprintf(&b, "    ServerName %s\n", vh.host)
		case p.serverName != "" && p.serverName != "_":
			fmt.Fprintf(&b, "    ServerName %s\n", p.serverName)
		}
		b.WriteString(`    ProxyPreserveHost On
    RequestHeader set X-Forwarded-Proto expr=%{REQUEST_SCHEME}
    RequestHeader set X-Real-IP expr=%{REMOTE_ADDR}
    # Longest prefix first: Apache takes the first ProxyPass that matches.
    # retry=0: a connect that failed (a full backlog while the service
    # restarts) does not put the socket out of service for 60 seconds.
`)
		for _, r := range vh.routes {
			back := "http://localhost" + r.location
			pass := back
			if r.up.unix {
				pass = "unix:" + r.up.addr + "|" + back
			} else {
				back = "http://" + r.up.addr + r.location
				pass = back
			}
			fmt.Fprintf(&b, "    ProxyPass \"%s\" \"%s\" retry=0\n", r.location, pass)
			fmt.Fprintf(&b, "    ProxyPassReverse \"%s\" \"%s\"\n", r.location, back)
		}
		b.WriteString("</VirtualHost>\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
