// SPDX-License-Identifier: Apache-2.0

package proxyconf

import (
	"fmt"
	"io"
	"strings"
)

// apache writes VirtualHosts for Apache 2.4.47 or later (2.4.7 for
// unix: backends, 2.4.47 for upgrade=websocket in mod_proxy_http;
// Debian 12 has 2.4.57 and later).
func apache(w io.Writer, p *plan) error {
	var b strings.Builder
	// Apache gives a request that no ServerName or ServerAlias matches
	// to the first VirtualHost read for its address. Debian reads
	// sites-enabled/*.conf in name order, so 000-default.conf would be
	// first unless this file sorts before it: "00-" < "000".
	site := "udsvisor"
	if p.catchAll() {
		site = "00-udsvisor"
	}
	lines := []string{
		"Needs mod_proxy, mod_proxy_http and mod_headers: a2enmod proxy proxy_http headers",
		"Install it as /etc/apache2/sites-available/" + site + ".conf, then a2ensite " + site + ".",
	}
	lines = append(lines, p.hostlessNote(
		[]string{
			"The routes without a host answer every Host that no ServerName matches:",
			"Apache gives such a request to the first <VirtualHost> of its address, and",
			"00-udsvisor.conf is read before Debian's 000-default.conf. Under a name that",
			"sorts after it, they lose those hosts to it unless you a2dissite 000-default.",
		},
		[]string{
			"The routes without a host answer Host " + p.serverName + " only; other hosts go to the",
			"first <VirtualHost> Apache read for the address (Debian's 000-default).",
		},
	)...)
	p.header(&b, lines...)
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
		case !p.catchAll():
			fmt.Fprintf(&b, "    ServerName %s\n", p.serverName)
		}
		b.WriteString(`    ProxyPreserveHost On
    RequestHeader set X-Forwarded-Proto expr=%{REQUEST_SCHEME}
    RequestHeader set X-Real-IP expr=%{REMOTE_ADDR}
    # Longest prefix first: Apache takes the first ProxyPass that matches.
    # retry=0: a connect that failed (a full backlog while the service
    # restarts) does not put the socket out of service for 60 seconds.
    # upgrade=websocket: a WebSocket handshake is passed on and tunnelled.
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
			fmt.Fprintf(&b, "    ProxyPass \"%s\" \"%s\" retry=0 upgrade=websocket\n", r.location, pass)
			fmt.Fprintf(&b, "    ProxyPassReverse \"%s\" \"%s\"\n", r.location, back)
		}
		b.WriteString("</VirtualHost>\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
