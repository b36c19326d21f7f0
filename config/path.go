// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// maxSunPath is the longest usable sun_path: Go and x/sys reject 108 bytes
// or more, as they must keep a terminating NUL (SECURITY-NOTES 0.12).
const maxSunPath = 107

// unixPath checks how a socket path is written, and then, read-only, the
// directories that already exist on it. It reports problems at key and
// returns false when the path cannot be used.
func (c *checker) unixPath(key, p string) bool {
	switch {
	case strings.HasPrefix(p, "@"):
		// Linux and Go treat a leading @ as the abstract namespace, which
		// has no file and so no owner or mode: anyone in the netns connects.
		c.errorf(key, "abstract sockets have no permissions; use a filesystem path")
	case strings.IndexByte(p, 0) >= 0:
		c.errorf(key, "contains a NUL byte")
	case !filepath.IsAbs(p):
		c.errorf(key, "path %q must be absolute", p)
	case filepath.Clean(p) != p:
		c.errorf(key, "not a clean path; did you mean %q?", filepath.Clean(p))
	case longestComponent(p) > 255:
		c.errorf(key, "has a %d-byte component; file names are limited to 255", longestComponent(p))
	case len(p) > maxSunPath:
		c.errorf(key, "is %d bytes; Unix socket paths are limited to %d", len(p), maxSunPath)
	case p == "/":
		c.errorf(key, "must name a socket file, not /")
	case reservedName(filepath.Base(p)):
		// Another socket's private link would be renamed over it (T30).
		c.errorf(key, "%q has the form .NAME.udsvisor, which udsvisor keeps for the private second name of socket NAME; choose another name",
			filepath.Base(p))
	default:
		return c.unixPathFS(key, p)
	}
	return false
}

// reservedName reports whether name has the form of the private second
// name the sockets package gives every Unix socket (".NAME.udsvisor").
func reservedName(name string) bool {
	return len(name) > len("..udsvisor") && strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".udsvisor")
}

func longestComponent(p string) int {
	n := 0
	for _, c := range strings.Split(p, "/") {
		n = max(n, len(c))
	}
	return n
}

// unixPathFS walks the existing directories of p with Lstat, the way the
// sockets package will later walk them with O_NOFOLLOW: a symlink, a
// directory someone else owns, or one others can write would let them
// redirect or replace the socket (SECURITY-NOTES T1, T2). The walk stops at
// the first missing directory, which udsvisor will create root-owned.
func (c *checker) unixPathFS(key, p string) bool {
	dir := filepath.Dir(p)
	cur := "/"
	parts := strings.Split(strings.TrimPrefix(dir, "/"), "/")
	if dir == "/" {
		parts = nil
	}
	for i := -1; i < len(parts); i++ {
		if i >= 0 {
			cur = filepath.Join(cur, parts[i])
		}
		fi, err := c.lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return true
		}
		if err != nil {
			c.errorf(key, "%v", err)
			return false
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			c.symlinkInPath(key, p, cur)
			return false
		}
		if !fi.IsDir() {
			c.errorf(key, "%s is not a directory", cur)
			return false
		}
		if !c.socketDir(key, cur, fi, cur == dir) {
			return false
		}
	}
	fi, err := os.Lstat(p)
	if err == nil && fi.Mode().Type() != fs.ModeSocket {
		// bind would fail with EADDRINUSE, and the stale-socket logic
		// never replaces anything but a socket.
		c.errorf(key, "%s exists and is %s, not a socket", p, describeType(fi.Mode()))
		return false
	}
	return true
}

func (c *checker) symlinkInPath(key, p, link string) {
	resolved, err := filepath.EvalSymlinks(link)
	if err != nil {
		c.errorf(key, "%s is a symlink; write the path without symlinks", link)
		return
	}
	// systemd rewrites /var/run silently; saying so keeps the config
	// honest about which directory is checked and created.
	c.errorf(key, "%s is a symlink to %s; write %q", link, resolved, filepath.Join(resolved, strings.TrimPrefix(p, link)))
}

// socketDir checks one existing directory on a socket path: it must be
// root's, and not writable by group or others, unless it is a sticky
// root-owned directory (like /tmp) further up. The socket's own directory
// must never be shared: in /tmp anyone could squat the name first.
func (c *checker) socketDir(key, dir string, fi fs.FileInfo, immediate bool) bool {
	owner, writable := othersCanReplace(fi, !immediate)
	switch {
	case owner != 0:
		c.errorf(key, "directory %s is owned by uid %d, mode %04o; refusing", dir, owner, uint32(fi.Mode().Perm()))
		return false
	case writable == 0:
		return true
	}
	who := "group-writable"
	if writable&0o002 != 0 {
		who = "world-writable"
	}
	c.errorf(key, "%s is %s; others could squat or replace the socket", dir, who)
	return false
}

// othersCanReplace says how someone besides root could replace what the
// directory fi holds, the rule of both the config file's directories
// (T29) and a socket's (T2, as sockets.Bind enforces it): owner is its
// uid when root does not own it, and writable its group and other write
// bits. A sticky directory clears writable where stickyOK: others cannot
// replace entries they do not own, though they can still take a new
// name first, which is why a socket's own directory may not be sticky.
func othersCanReplace(fi fs.FileInfo, stickyOK bool) (owner uint32, writable fs.FileMode) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		owner = st.Uid
	}
	writable = fi.Mode().Perm() & 0o022
	if stickyOK && fi.Mode()&fs.ModeSticky != 0 {
		writable = 0
	}
	return owner, writable
}

func describeType(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case fs.ModeDir:
		return "a directory"
	case fs.ModeSymlink:
		return "a symlink"
	case fs.ModeNamedPipe:
		return "a named pipe"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		return "a device"
	}
	return fmt.Sprintf("a file of type %v", m.Type())
}
