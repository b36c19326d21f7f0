// SPDX-License-Identifier: Apache-2.0

package config

import (
	"io/fs"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/udsvisor/udsvisor/api"
)

// minQuietBacklog is the smallest backlog that check accepts without a
// warning.
const minQuietBacklog = 128

var socketKeys = []string{"name", "path", "listen", "public", "owner", "group", "mode", "directory_mode", "backlog", "stdin"}

// socket converts one [[services.NAME.sockets]] table of svc.
func (c *checker) socket(svc *Service, t table, index int) *Socket {
	c.unknown(t, socketKeys...)
	s := &Socket{
		Key:           t.key,
		Line:          c.lines.line(t.key),
		Index:         index,
		Name:          svc.Name,
		public:        c.boolean(t, "public"),
		Stdin:         c.boolean(t, "stdin"),
		Mode:          defaultSocketMode,
		DirectoryMode: defaultDirectoryMode,
		Backlog:       defaultBacklog,
	}
	if name, ok := c.str(t, "name"); ok {
		s.Name = name
	}
	if !validFDName(s.Name) {
		// The name travels in LISTEN_FDNAMES, which is ':'-separated
		// (systemd fd-util.c fdname_is_valid).
		c.errorf(t.sub("name"), "%q is not a valid LISTEN_FDNAMES entry: 1-255 printable ASCII characters, no ':'", s.Name)
	}
	path, hasPath := c.str(t, "path")
	listen, hasListen := c.str(t, "listen")
	_, pathSet := t.m["path"]
	_, listenSet := t.m["listen"]
	switch {
	case pathSet == listenSet:
		c.errorf(t.key, "exactly one of path or listen")
	case hasPath:
		// Kept even when invalid, so that crossCheck can still name a
		// duplicate; any error discards the whole config anyway.
		s.Path = path
		c.unixPath(t.sub("path"), path)
	case hasListen:
		if addr, ok := c.listenAddr(t.sub("listen"), listen, s.public); ok {
			s.Addr = addr
		}
	}
	if n, ok := c.integer(t, "backlog"); ok {
		switch {
		case n < 1 || n > 65535:
			c.errorf(t.sub("backlog"), "%d is out of range 1-65535", n)
		case c.somaxconn > 0 && n > int64(c.somaxconn):
			// listen(2) silently truncates; say so, since a full backlog
			// is what turns a restart into 502s (SECURITY-NOTES 0.10).
			c.warnf(t.sub("backlog"), "kernel caps the backlog at %d (net.core.somaxconn)", c.somaxconn)
			s.Backlog = int(n)
		case n < minQuietBacklog:
			// The backlog is all that holds clients while the service
			// restarts; past it connects fail at once with EAGAIN.
			c.warnf(t.sub("backlog"), "only %d connections can wait while the service restarts; more fail at once with EAGAIN (a 502 from nginx)", n)
			s.Backlog = int(n)
		default:
			s.Backlog = int(n)
		}
	}
	if pathSet {
		c.unixAccess(svc, t, s)
	} else if listenSet {
		s.Mode, s.DirectoryMode = 0, 0
		for _, k := range []string{"owner", "group", "mode", "directory_mode"} {
			if _, ok := t.m[k]; ok {
				c.errorf(t.sub(k), "%s applies only to Unix sockets (path), not TCP", k)
			}
		}
	}
	if pathSet && s.public {
		c.errorf(t.sub("public"), "public applies only to TCP sockets (listen)")
	}
	return s
}

// unixAccess fills the owner, group and modes of a Unix socket.
func (c *checker) unixAccess(svc *Service, t table, s *Socket) {
	s.OwnerName, s.UID = svc.User, svc.UID
	s.GroupName, s.GID = svc.Group, svc.GID
	if a, ok := c.userValue(t, "owner"); ok {
		s.OwnerName, s.UID = a.name, a.uid
	}
	if v, ok := t.m["group"]; ok {
		if name, gid, ok := c.groupValue(t.sub("group"), v); ok {
			s.GroupName, s.GID = name, gid
		}
	}
	if m, ok := c.socketMode(t, "mode"); ok {
		s.Mode = m
	}
	if s.Mode&0o002 != 0 {
		c.warnf(t.sub("mode"), "\"%04o\" makes the socket world-connectable: every local user can connect", uint32(s.Mode))
	}
	if m, ok := c.mode(t, "directory_mode", "0755"); ok {
		key := t.sub("directory_mode")
		switch {
		case m&0o022 != 0:
			c.errorf(key, "%q would be writable by others; they could replace the socket", t.m["directory_mode"])
		case m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0:
			c.errorf(key, "setuid/setgid/sticky bits are not supported on socket directories")
		default:
			s.DirectoryMode = m
		}
	}
}

// socketMode reads the mode of a socket file, a service's or the control
// socket's; ok is false when absent or already reported.
func (c *checker) socketMode(t table, name string) (fs.FileMode, bool) {
	m, ok := c.mode(t, name, "0660")
	if !ok {
		return 0, false
	}
	switch {
	case m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0:
		c.errorf(t.sub(name), "setuid/setgid/sticky bits are meaningless on a socket")
	case m&0o222 == 0:
		c.errorf(t.sub(name), "%q has no write bit: connect(2) needs write permission", t.m[name])
	default:
		return m, true
	}
	return 0, false
}

// validFDName is systemd's fdname_is_valid.
func validFDName(s string) bool {
	if len(s) < 1 || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' || s[i] == ':' {
			return false
		}
	}
	return true
}

// listenAddr parses a TCP address. Only IP literals are accepted: a host
// name resolves to one address at most, at start, and "localhost" may
// well be ::1 alone. A wildcard or any non-loopback address needs
// public = true, because loopback is the only safe default
// (SECURITY-NOTES T22).
func (c *checker) listenAddr(key, s string, public bool) (netip.AddrPort, bool) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		if _, err := netip.ParseAddr(s); err == nil {
			c.errorf(key, "%q has no port; port must be 1-65535", s)
		} else {
			c.errorf(key, "%q is not an address like \"127.0.0.1:8080\"", s)
		}
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		c.errorf(key, "port %q: port must be 1-65535", portStr)
		return netip.AddrPort{}, false
	}
	var addr netip.Addr
	if host == "" {
		// net.Listen(":8080") binds [::], every interface in both
		// families (SECURITY-NOTES 0.9); spell that out.
		addr = netip.IPv6Unspecified()
	} else if addr, err = netip.ParseAddr(host); err != nil {
		c.errorf(key, "%q: use an IP literal, e.g. \"127.0.0.1:%d\"", s, port)
		return netip.AddrPort{}, false
	}
	ap := netip.AddrPortFrom(addr, uint16(port))
	switch {
	case public:
	case addr.IsUnspecified():
		c.errorf(key, "%q binds every interface; use \"127.0.0.1:%d\" or set public = true", s, port)
		return netip.AddrPort{}, false
	case !addr.IsLoopback():
		c.errorf(key, "%s is not a loopback address; set public = true to listen on it", addr)
		return netip.AddrPort{}, false
	}
	return ap, true
}

// tcpOverlap reports whether binding both addresses would collide: the
// same address, or a wildcard with anything on its port. [::] covers IPv4
// too, since Linux defaults to bindv6only=0.
func tcpOverlap(a, b netip.AddrPort) bool {
	if a.Port() != b.Port() {
		return false
	}
	x, y := a.Addr(), b.Addr()
	switch {
	case x == y:
		return true
	case x == netip.IPv6Unspecified() || y == netip.IPv6Unspecified():
		return true
	case x == netip.IPv4Unspecified():
		return y.Is4()
	case y == netip.IPv4Unspecified():
		return x.Is4()
	}
	return false
}

// crossCheck finds sockets that two services (or a service and the
// control socket) would both bind. Sockets are visited in file order so
// that the later one is blamed and names the earlier one.
func (c *checker) crossCheck(control string, sockets []*Socket) {
	type owner struct{ key, where string }
	paths := map[string]owner{}
	if control != "" {
		where := "default"
		if _, ok := c.lines["supervisor.control_socket"]; ok {
			where = c.at("supervisor.control_socket")
		}
		paths[control] = owner{"supervisor.control_socket", where}
		// The root-only control socket sits next to it.
		paths[control+api.RootSocketSuffix] = owner{"the root-only control socket of supervisor.control_socket", where}
	}
	var tcp []*Socket
	for _, s := range sockets {
		switch {
		case strings.HasPrefix(s.Path, "/"):
			// Cleaned, so that /run/a/./x.sock is caught as well as
			// reported unclean.
			p := filepath.Clean(s.Path)
			if o, ok := paths[p]; ok {
				c.errorf(s.Key+".path", "same socket as %s (%s)", o.key, o.where)
				continue
			}
			paths[p] = owner{s.Key, c.at(s.Key + ".path")}
		case s.Addr.IsValid():
			for _, o := range tcp {
				if tcpOverlap(s.Addr, o.Addr) {
					c.errorf(s.Key+".listen", "%s overlaps %s (%s)", s.Addr, o.Key, c.at(o.Key+".listen"))
					break
				}
			}
			tcp = append(tcp, s)
		}
	}
}

// placeFDs numbers the sockets of s as the command sees them: the one
// with stdin = true is fd 0, the others 3, 4, ... in config order. At
// most one socket can be stdin.
func (c *checker) placeFDs(s *Service) {
	next := 3
	var stdin *Socket
	for _, sock := range s.Sockets {
		if !sock.Stdin {
			sock.FD = next
			next++
			continue
		}
		if stdin != nil {
			c.errorf(joinKey(sock.Key, "stdin"), "only one socket can be stdin; %s already is", stdin.Key)
			continue
		}
		stdin = sock
	}
}
