// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"slices"
	"strings"
)

var routeKeys = []string{"location", "host", "socket"}

// Route is one [[services.NAME.proxy]] entry: a public route of the
// reverse proxy to one of the service's sockets. `udsvisor proxy` turns
// routes into nginx, Apache, Caddy or HAProxy configs; udsvisor itself
// serves nothing on them.
type Route struct {
	// Key is the full key for messages, e.g. services.api.proxy[0].
	Key  string
	Line int
	// Location is the URL path prefix, starting and ending with "/".
	// The proxy passes the path on unchanged: the service sees
	// /api/users, not /users.
	Location string
	// Host is the virtual host (lower case), or "" for the proxy's
	// default server.
	Host string
	// Socket is the service's socket the route goes to.
	Socket *Socket
}

// routeLocation is a URL path prefix made only of characters that need no
// quoting in any of the generated proxy configs: a quote, a space, ';' or
// '{' in a value would end the directive and let the value write config.
// It matches ^/(?:[A-Za-z0-9._~@+,=:-]+/)*$.
func routeLocation(loc string) bool {
	if !strings.HasPrefix(loc, "/") || !strings.HasSuffix(loc, "/") {
		return false
	}
	if loc == "/" {
		return true
	}
	for _, seg := range strings.Split(loc[1:len(loc)-1], "/") {
		if seg == "" || strings.Trim(seg, alnum+"._~@+,=:-") != "" {
			return false
		}
	}
	return true
}

// dnsLabel reports whether l is one label of a host name (RFC 1123):
// ^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$.
func dnsLabel(l string) bool {
	return len(l) >= 1 && len(l) <= 63 && l[0] != '-' && l[len(l)-1] != '-' &&
		strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
}

// routes converts the [[services.NAME.proxy]] tables of svc, after its
// sockets.
func (c *checker) routes(svc *Service, t table) {
	for _, rt := range c.tables(t, "proxy") {
		if r := c.route(svc, rt); r != nil {
			svc.Proxy = append(svc.Proxy, r)
		}
	}
}

func (c *checker) route(svc *Service, t table) *Route {
	c.unknown(t, routeKeys...)
	r := &Route{Key: t.key, Line: c.lines.line(t.key), Location: "/"}
	if loc, ok := c.str(t, "location"); ok {
		if msg := checkLocation(loc); msg != "" {
			c.errorf(t.sub("location"), "%q %s", loc, msg)
		} else {
			r.Location = loc
		}
	}
	if host, ok := c.str(t, "host"); ok {
		if !validHost(host) {
			c.errorf(t.sub("host"), "%q is not a DNS name like \"api.example.com\"", host)
		} else {
			r.Host = strings.ToLower(host)
		}
	}
	name, named := c.str(t, "socket")
	_, set := t.m["socket"]
	switch {
	case set && !named:
		// wrong type, reported by str
	case named:
		i := slices.IndexFunc(svc.Sockets, func(s *Socket) bool { return s.Name == name })
		if i < 0 {
			c.errorf(t.sub("socket"), "%s has no socket named %q%s", joinKey("services", svc.Name), name, socketNames(svc))
			return nil
		}
		r.Socket = svc.Sockets[i]
	default:
		i := slices.IndexFunc(svc.Sockets, (*Socket).IsUnix)
		switch {
		case len(svc.Sockets) == 0:
			c.errorf(t.key, "%s has no sockets to route to", joinKey("services", svc.Name))
			return nil
		case i < 0:
			c.errorf(t.key, "%s has no Unix socket; set socket to the name of a TCP one%s", joinKey("services", svc.Name), socketNames(svc))
			return nil
		}
		r.Socket = svc.Sockets[i]
	}
	return r
}

// checkLocation returns why loc is not a usable path prefix, or "".
func checkLocation(loc string) string {
	switch {
	case !strings.HasPrefix(loc, "/") || !strings.HasSuffix(loc, "/"):
		return `must start and end with "/", like "/api/"`
	case !routeLocation(loc):
		return "may only hold letters, digits, \"/\" and ._~@+,=:- (no empty segments)"
	}
	for _, seg := range strings.Split(strings.Trim(loc, "/"), "/") {
		if seg == "." || seg == ".." {
			return `must not have "." or ".." segments`
		}
	}
	return ""
}

// validHost reports whether h is a DNS host name (letters, digits and
// hyphens in dot-separated labels, at most 253 bytes, no trailing dot).
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.ToLower(h), ".") {
		if !dnsLabel(l) {
			return false
		}
	}
	return true
}

// socketNames lists the socket names of svc for "no socket named" errors.
func socketNames(svc *Service) string {
	if len(svc.Sockets) == 0 {
		return ""
	}
	names := make([]string, len(svc.Sockets))
	for i, s := range svc.Sockets {
		names[i] = fmt.Sprintf("%q", s.Name)
	}
	return "; it has " + strings.Join(names, ", ")
}

// crossRoutes refuses two routes, in any services, for the same host and
// location: the proxy could send the requests to only one of them.
// Routes are visited in file order so that the later one is blamed.
func (c *checker) crossRoutes(services []*Service) {
	var all []*Route
	for _, s := range services {
		all = append(all, s.Proxy...)
	}
	slices.SortStableFunc(all, func(a, b *Route) int { return a.Line - b.Line })
	type where struct{ host, location string }
	seen := map[where]*Route{}
	for _, r := range all {
		w := where{r.Host, r.Location}
		first, ok := seen[w]
		if !ok {
			seen[w] = r
			continue
		}
		host := "the default host"
		if r.Host != "" {
			host = fmt.Sprintf("host %q", r.Host)
		}
		c.errorf(r.Key, "location %q on %s is already routed by %s (%s)", r.Location, host, first.Key, c.at(first.Key))
	}
}
