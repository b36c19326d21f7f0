// SPDX-License-Identifier: Apache-2.0

//go:build linux

package integration

import (
	"fmt"
	"strings"
)

// route sends the requests under location to the Unix socket at path.
type route struct {
	location string
	path     string
}

// handNginx writes an http{}-context nginx config of the shape that
// `udsvisor proxy nginx` generates: per route an upstream listing the
// socket three times with max_fails=0 and keepalive, so that nginx
// retries a request whose process was killed under it (SECURITY-NOTES
// 0.15), and a server on listen proxying each location to it. Only the
// self-bound baseline of the kill-under-load test uses it: that backend
// binds its own socket, so udsvisor has no socket to generate a config
// for.
func handNginx(listen string, routes []route) string {
	var b strings.Builder
	for i, r := range routes {
		fmt.Fprintf(&b, "upstream hand_%d {\n", i)
		for range 3 {
			fmt.Fprintf(&b, "\tserver unix:%s max_fails=0;\n", r.path)
		}
		b.WriteString("\tkeepalive 16;\n}\n")
	}
	fmt.Fprintf(&b, "server {\n\tlisten %s;\n\tserver_name _;\n", listen)
	for i, r := range routes {
		fmt.Fprintf(&b, "\tlocation %s {\n", r.location)
		fmt.Fprintf(&b, "\t\tproxy_pass http://hand_%d;\n", i)
		b.WriteString("\t\tproxy_http_version 1.1;\n")
		b.WriteString("\t\tproxy_set_header Connection \"\";\n")
		b.WriteString("\t\tproxy_set_header Host $host;\n")
		b.WriteString("\t\tproxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n")
		b.WriteString("\t\tproxy_set_header X-Forwarded-Proto $scheme;\n")
		b.WriteString("\t\tproxy_next_upstream error timeout;\n")
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}
