// SPDX-License-Identifier: Apache-2.0

// Package proxyconf writes reverse-proxy configurations (nginx, Apache,
// Caddy, HAProxy) for the [[services.NAME.proxy]] routes of a config, and
// checks that the proxy's user can reach the sockets they route to.
//
// Every generator passes the request path on unchanged: a route at
// /api/ sends /api/users to the service as /api/users. Stripping the
// prefix would break every link, redirect and cookie path the service
// builds from its own idea of where it lives; a service behind a prefix
// serves under that prefix. All four kinds agree on this, and on matching
// the longest location first.
package proxyconf

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/udsvisor/udsvisor/config"
)

// Kinds are the proxies Generate knows, in the order usage lists them.
var Kinds = []string{"nginx", "apache", "caddy", "haproxy"}

// Options shape the generated config beyond what services.toml says.
type Options struct {
	// Listen is where the proxy listens: a port ("80", the default) or
	// an IP literal and a port ("127.0.0.1:8080", "[::1]:8080").
	Listen string
	// ServerName names the server of the routes without a host: nginx
	// server_name, Apache ServerName and the Caddy site address. Without
	// it (or with "_") that server is the catch-all: nginx's
	// default_server for the address, and for Apache the first
	// VirtualHost of its address once installed under the name the
	// header gives.
	ServerName string
	// Chroot is the directory HAProxy is chrooted to (the "chroot" of
	// haproxy.cfg's global section; Debian's stock config has
	// /var/lib/haproxy). HAProxy connects to a unix@ server from inside
	// it, so socket paths are written relative to it, and a routed
	// socket outside it is an error. HAProxy only.
	Chroot string
}

// DefaultUser is the user that Debian's package of kind runs the proxy's
// workers as, which Check takes when no user is given: nginx and Apache
// run as www-data, Caddy as caddy (which Debian's caddy package adds to
// group www-data) and HAProxy as haproxy.
func DefaultUser(kind string) string {
	switch kind {
	case "caddy":
		return "caddy"
	case "haproxy":
		return "haproxy"
	}
	return "www-data"
}

// Generate writes the config of kind (one of Kinds) for every route in
// cfg to w. Services without routes are left out; a config without any
// route is an error, since the output would serve nothing.
func Generate(w io.Writer, kind string, cfg *config.Config, opts Options) error {
	gen, ok := map[string]func(io.Writer, *plan) error{
		"nginx": nginx, "apache": apache, "caddy": caddy, "haproxy": haproxy,
	}[kind]
	if !ok {
		return fmt.Errorf("unknown proxy %q; use one of %s", kind, strings.Join(Kinds, ", "))
	}
	p, err := newPlan(kind, cfg, opts)
	if err != nil {
		return err
	}
	return gen(w, p)
}

// plan is the routes of a config arranged for writing: one upstream per
// routed socket, and the routes grouped into virtual hosts.
type plan struct {
	kind, file string
	listen     listenAddr
	serverName string // "" when not given
	chroot     string // HAProxy's chroot; "" when not given
	upstreams  []*upstream
	// vhosts: the default one (host "") first when it has routes, then
	// by host name.
	vhosts []*vhost
}

type upstream struct {
	// name is unique in the plan and made only of [A-Za-z0-9_], so that
	// it is valid as an nginx upstream and a HAProxy backend name.
	name string
	unix bool
	// addr is the socket path (relative to the plan's chroot, if any),
	// or host:port for a TCP socket.
	addr string
}

type vhost struct {
	host   string
	routes []route // longest location first
}

type route struct {
	location string
	up       *upstream
}

// listenAddr is Options.Listen split up; host is "" for every address.
type listenAddr struct{ host, port string }

// String is host:port, or the bare port.
func (l listenAddr) String() string {
	if l.host == "" {
		return l.port
	}
	return net.JoinHostPort(l.host, l.port)
}

// safeToken is what Generate writes unquoted into a proxy config. Config
// values are validated already; socket paths may hold more, and a space,
// quote, ';', '|' or brace in one would change the generated directives.
// It matches ^[A-Za-z0-9._~@+,=:/-]+$ (a loop: a package regexp is
// compiled at every start of the binary).
func safeToken(s string) bool {
	return s != "" && strings.Trim(s, tokenChars) == ""
}

// Cutsets for strings.Trim: a string that Trim empties holds only these.
const (
	tokenChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~@+,=:/-"
	hostChars  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-"
)

// hostName reports whether n is a DNS name for --server-name:
// ^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$.
func hostName(n string) bool {
	return len(n) >= 1 && len(n) <= 253 && strings.Trim(n, hostChars) == "" &&
		strings.IndexByte(".-", n[0]) < 0 && strings.IndexByte(".-", n[len(n)-1]) < 0
}

func newPlan(kind string, cfg *config.Config, opts Options) (*plan, error) {
	p := &plan{kind: kind, file: cfg.File, serverName: opts.ServerName, chroot: opts.Chroot}
	var err error
	if p.listen, err = parseListen(opts.Listen); err != nil {
		return nil, err
	}
	if n := opts.ServerName; n != "" && n != "_" && !hostName(n) {
		return nil, fmt.Errorf("server name %q is not a DNS name like \"www.example.com\"", n)
	}
	if c := opts.Chroot; c != "" {
		switch {
		case kind != "haproxy":
			return nil, fmt.Errorf("a chroot applies to haproxy only, not %s", kind)
		case !filepath.IsAbs(c) || filepath.Clean(c) != c || c == "/" || !safeToken(c):
			return nil, fmt.Errorf("chroot %q is not a clean absolute directory like \"/var/lib/haproxy\"", c)
		}
	}
	bySocket := map[*config.Socket]*upstream{}
	names := map[string]bool{}
	hosts := map[string]*vhost{}
	for _, svc := range cfg.Services {
		for _, r := range svc.Proxy {
			up, ok := bySocket[r.Socket]
			if !ok {
				if up, err = newUpstream(svc.Name, r.Socket, names, p.chroot); err != nil {
					return nil, err
				}
				bySocket[r.Socket] = up
				p.upstreams = append(p.upstreams, up)
			}
			vh, ok := hosts[r.Host]
			if !ok {
				vh = &vhost{host: r.Host}
				hosts[r.Host] = vh
				p.vhosts = append(p.vhosts, vh)
			}
			vh.routes = append(vh.routes, route{location: r.Location, up: up})
		}
	}
	if len(p.upstreams) == 0 {
		return nil, fmt.Errorf("%s has no [[services.NAME.proxy]] routes; nothing to generate", cfg.File)
	}
	slices.SortStableFunc(p.vhosts, func(a, b *vhost) int { return strings.Compare(a.host, b.host) })
	for _, vh := range p.vhosts {
		// Apache and HAProxy take the first match, so the longest
		// prefix goes first; the others sort alike to read the same.
		slices.SortStableFunc(vh.routes, func(a, b route) int {
			if d := len(b.location) - len(a.location); d != 0 {
				return d
			}
			return strings.Compare(a.location, b.location)
		})
	}
	return p, nil
}

// catchAll reports whether the routes without a host make a server that
// answers every Host no other server names: there are such routes and
// no --server-name.
func (p *plan) catchAll() bool {
	return (p.serverName == "" || p.serverName == "_") && p.hostless()
}

// hostless reports whether some routes have no host (they sort first).
func (p *plan) hostless() bool {
	return len(p.vhosts) > 0 && p.vhosts[0].host == ""
}

// hostlessNote picks the header lines on the routes without a host:
// catchAll when they answer every Host, named when they answer only
// --server-name, none when every route has its host.
func (p *plan) hostlessNote(catchAll, named []string) []string {
	switch {
	case p.catchAll():
		return catchAll
	case p.hostless():
		return named
	}
	return nil
}

func newUpstream(service string, s *config.Socket, names map[string]bool, chroot string) (*upstream, error) {
	base := "udsvisor_" + identifier(service) + "_" + identifier(s.Name)
	name := base
	for i := 2; names[name]; i++ {
		name = base + "_" + strconv.Itoa(i)
	}
	names[name] = true
	up := &upstream{name: name, unix: s.IsUnix()}
	if !up.unix {
		up.addr = connectAddr(s.Addr).String()
		return up, nil
	}
	if !safeToken(s.Path) {
		return nil, fmt.Errorf("%s.path: %q cannot be written into a proxy config unquoted; use only letters, digits and ._~@+,=:/-", s.Key, s.Path)
	}
	up.addr = s.Path
	if chroot != "" {
		inside, ok := strings.CutPrefix(s.Path, chroot+"/")
		if !ok {
			return nil, fmt.Errorf("%s.path: %s is outside HAProxy's chroot %s, where HAProxy cannot reach it; put the socket under %s", s.Key, s.Path, chroot, chroot)
		}
		up.addr = "/" + inside
	}
	return up, nil
}

// connectAddr is where the proxy connects for a TCP socket: a wildcard
// bind is reached on the loopback address of its own family, since
// udsvisor binds IPv6 sockets with IPV6_V6ONLY (sockets.bindTCP): [::]
// takes no IPv4 connection, so 127.0.0.1 would be refused. An
// IPv4-mapped address is bound as IPv4, so it is connected to as one.
func connectAddr(a netip.AddrPort) netip.AddrPort {
	ip := a.Addr().Unmap()
	switch {
	case ip == netip.IPv4Unspecified():
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	case ip.IsUnspecified():
		ip = netip.IPv6Loopback()
	}
	return netip.AddrPortFrom(ip, a.Port())
}

// identifier maps s to [A-Za-z0-9_]; newUpstream numbers any collision.
func identifier(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// parseListen accepts a port, or an IP literal (or "*") and a port.
func parseListen(s string) (listenAddr, error) {
	if s == "" {
		return listenAddr{port: "80"}, nil
	}
	l := listenAddr{port: s}
	if strings.Contains(s, ":") {
		var err error
		if l.host, l.port, err = net.SplitHostPort(s); err != nil {
			return listenAddr{}, fmt.Errorf("listen address %q: want a port or IP:PORT, e.g. \"127.0.0.1:8080\"", s)
		}
		if l.host == "*" {
			l.host = ""
		} else if _, err := netip.ParseAddr(l.host); err != nil {
			return listenAddr{}, fmt.Errorf("listen address %q: %q is not an IP address", s, l.host)
		}
	}
	if n, err := strconv.ParseUint(l.port, 10, 16); err != nil || n == 0 {
		return listenAddr{}, fmt.Errorf("listen address %q: port must be 1-65535", s)
	}
	return l, nil
}

// header is the comment every output starts with: the command that
// made it, so that it is regenerated rather than edited. The file name is
// the one value not validated, so it is quoted when it could end the
// comment line.
func (p *plan) header(w io.Writer, lines ...string) {
	file := p.file
	if !safeToken(file) {
		file = strconv.Quote(file)
	}
	fmt.Fprintf(w, "# Generated by: udsvisor proxy %s -c %s", p.kind, file)
	if p.listen != (listenAddr{port: "80"}) {
		fmt.Fprintf(w, " --listen %s", p.listen)
	}
	if p.serverName != "" {
		fmt.Fprintf(w, " --server-name %s", p.serverName)
	}
	if p.chroot != "" {
		fmt.Fprintf(w, " --chroot %s", p.chroot)
	}
	fmt.Fprintln(w, "\n# Regenerate it rather than edit it.")
	for _, l := range lines {
		fmt.Fprintf(w, "# %s\n", l)
	}
	fmt.Fprintln(w, "# Request paths are passed on unchanged: a route at /api/ sends /api/x to the")
	fmt.Fprintln(w, "# service as /api/x, so the service must serve under its prefix.")
}
