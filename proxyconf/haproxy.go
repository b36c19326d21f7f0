// SPDX-License-Identifier: Apache-2.0

package proxyconf

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// haproxy writes a frontend and one backend per socket (HAProxy 2.x).
func haproxy(w io.Writer, p *plan) error {
	var b strings.Builder
	lines := []string{"Append it to /etc/haproxy/haproxy.cfg, after the global and defaults sections."}
	if slices.ContainsFunc(p.upstreams, func(up *upstream) bool { return up.unix }) {
		// HAProxy connects to a server after it chrooted, so a unix@
		// path is looked up inside the chroot; and it runs with the gid
		// of "group" alone, having dropped every supplementary group
		// (probed on Debian 12's 2.6: /proc/PID/status shows no Groups).
		if p.chroot != "" {
			lines = append(lines,
				"HAProxy is chrooted to "+p.chroot+" (--chroot): socket paths are written as",
				"HAProxy sees them from inside it.")
		} else {
			lines = append(lines,
				"Debian's haproxy.cfg has \"chroot /var/lib/haproxy\": HAProxy connects to unix@",
				"servers from inside its chroot, where these paths do not exist (503). Put the",
				"sockets under the chroot and pass --chroot /var/lib/haproxy, or remove the line.")
		}
		lines = append(lines,
			"HAProxy keeps only the group named by \"group\" (Debian: haproxy), none of its",
			"user's other groups: give the sockets that group.")
	}
	p.header(&b, lines...)
	bind := ":" + p.listen.port
	if p.listen.host != "" {
		bind = p.listen.String()
	}
	// X-Real-IP is set, never passed on: a client's own would reach the
	// service as if HAProxy had vouched for it (issue 10, item 10).
	fmt.Fprintf(&b, `
frontend udsvisor
    bind %s
    mode http
    option forwardfor
    http-request set-header X-Real-IP %%[src]
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
`, bind)
	// The Host header without its port; a request for one of the hosts
	// is routed by that host's routes only, as nginx and Apache do.
	const host = "req.hdr(host),field(1,:)"
	var named []string
	for _, vh := range p.vhosts {
		if vh.host != "" {
			named = append(named, vh.host)
		}
	}
	if len(named) > 0 {
		fmt.Fprintf(&b, "    acl udsvisor_vhost %s -i %s\n", host, strings.Join(named, " "))
	}
	b.WriteString("    # Longest prefix first: HAProxy takes the first use_backend that matches.\n")
	var fallback string
	for _, vh := range p.vhosts {
		for _, r := range vh.routes {
			var conds []string
			switch {
			case vh.host != "":
				conds = append(conds, fmt.Sprintf("{ %s -i %s }", host, vh.host))
			case len(named) > 0:
				conds = append(conds, "!udsvisor_vhost")
			}
			if r.location != "/" {
				conds = append(conds, fmt.Sprintf("{ path_beg %s }", r.location))
			}
			if len(conds) == 0 {
				fallback = r.up.name
				continue
			}
			fmt.Fprintf(&b, "    use_backend %s if %s\n", r.up.name, strings.Join(conds, " "))
		}
	}
	if fallback != "" {
		fmt.Fprintf(&b, "    default_backend %s\n", fallback)
	}
	for _, up := range p.upstreams {
		addr := up.addr
		if up.unix {
			addr = "unix@" + addr
		}
		// retries: a connect that failed (a full backlog while the
		// service restarts) is tried again; without health checks the
		// server is never marked down.
		fmt.Fprintf(&b, "\nbackend %s\n    mode http\n    retries 3\n    server s1 %s\n", up.name, addr)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
