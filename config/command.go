// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// command reads command and resolves command[0] to an absolute path now,
// so that a typo fails `check` rather than a restart at 3 a.m., and so
// that the launch never searches a PATH.
func (c *checker) command(t table, s *Service, path string) {
	argv, ok := c.stringList(t, "command")
	if !ok {
		if _, present := t.m["command"]; !present {
			c.errorf(t.sub("command"), "is required")
		}
		return
	}
	key := t.sub("command")
	if len(argv) == 0 {
		c.errorf(key, "must not be empty")
		return
	}
	key0 := indexKey(key, 0)
	name := argv[0]
	var exe string
	switch {
	case name == "":
		c.errorf(key0, "must not be empty")
		return
	case filepath.IsAbs(name):
		exe = name
		fi, err := os.Stat(name)
		if err != nil {
			c.errorf(key0, "%v", err)
			return
		}
		if !fi.Mode().IsRegular() {
			c.errorf(key0, "%q is %s, not a regular file", name, describeType(fi.Mode()))
			return
		}
		if !canExec(fi, s) {
			c.errorf(key0, "%q is not executable by user %q", name, s.User)
			return
		}
	case strings.ContainsRune(name, '/'):
		// Relative to what? The working directory of `check` is not the
		// service's.
		c.errorf(key0, "%q must be absolute, or a bare name looked up in PATH", name)
		return
	default:
		if exe = lookPath(name, path, s); exe == "" {
			c.errorf(key0, "%q not found in PATH %q", name, path)
			return
		}
	}
	c.replaceable(key0, exe, s)
	s.Command = slices.Clone(argv)
	s.Command[0] = exe
}

// lookPath is exec.LookPath with the service's PATH instead of ours.
// Relative PATH entries are skipped: they would depend on the working
// directory at launch (and "." is the classic PATH hijack).
func lookPath(name, path string, s *Service) string {
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && canExec(fi, s) {
			return p
		}
	}
	return ""
}

// canExec applies the kernel's permission check for the service user:
// owner bits if it owns the file, group bits if in its group, else other.
// Root (uid 0) needs any x bit.
func canExec(fi fs.FileInfo, s *Service) bool {
	perm := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || s.User == "" {
		// Unknown user (already reported): any x bit.
		return perm&0o111 != 0
	}
	switch {
	case s.UID == 0:
		return perm&0o111 != 0
	case st.Uid == s.UID:
		return perm&0o100 != 0
	case st.Gid == s.GID || slices.Contains(s.Groups, st.Gid):
		return perm&0o010 != 0
	}
	return perm&0o001 != 0
}

// replaceable refuses a program that someone other than root (or, for a
// service that does not run as root, its own user) could overwrite or
// swap: they would run code as the service, with its sockets (T20, T29).
// As sshd's StrictModes, it checks the file and every directory up to /,
// along the path as written and along the path its symlinks lead to. A
// directory others may write is refused unless it is sticky (then they
// cannot replace what is in it). Group write on the file is an error for
// a root service and a warning otherwise, since the group is often the
// service's own.
func (c *checker) replaceable(key, exe string, s *Service) {
	paths := []string{exe}
	if real := c.realPath(exe); real != "" && real != exe {
		paths = append(paths, real)
	}
	seen := map[string]bool{}
	for _, p := range paths {
		for cur, file := p, true; ; cur, file = filepath.Dir(cur), false {
			if !seen[cur] {
				seen[cur] = true
				if c.replaceableNode(key, cur, file, s) {
					return // one error per command is enough
				}
			}
			if cur == "/" {
				break
			}
		}
	}
}

// replaceableNode checks one file (file true) or directory of a command's
// path and reports whether it found an error.
func (c *checker) replaceableNode(key, p string, file bool, s *Service) bool {
	fi, err := c.lstat(p)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.errorf(key, "%v", err)
			return true
		}
		return false
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return false // its target is walked as the resolved path
	}
	what := p
	if !file {
		what = "directory " + p
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && (s.UID == 0 || st.Uid != s.UID) {
		c.errorf(key, "%s is owned by uid %d, who could replace the program; it must belong to root%s",
			what, st.Uid, ownerOrUser(s))
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case perm&0o002 != 0 && (file || fi.Mode()&fs.ModeSticky == 0):
		c.errorf(key, "%s is writable by others; anyone could replace the program", what)
		return true
	case perm&0o020 != 0 && (file || fi.Mode()&fs.ModeSticky == 0):
		if s.UID == 0 && s.User != "" {
			c.errorf(key, "%s is writable by its group, whose members could replace a program that runs as root", what)
			return true
		}
		if file {
			c.warnf(key, "%s is writable by its group", what)
		}
	}
	return false
}

// ownerOrUser names who besides root may own a command's file and
// directories.
func ownerOrUser(s *Service) string {
	if s.UID == 0 || s.User == "" {
		return ""
	}
	return " or to the service's user " + s.User
}
