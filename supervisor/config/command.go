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
	c.replaceable(key0, exe)
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

// replaceable refuses a program that others could overwrite, or whose
// directory lets others swap it: they would run code as the service, with
// its sockets (SECURITY-NOTES T20). Group write is only warned about,
// since the group is often the service's own.
func (c *checker) replaceable(key, exe string) {
	fi, err := os.Stat(exe)
	if err != nil {
		return
	}
	if fi.Mode().Perm()&0o002 != 0 {
		c.errorf(key, "%s is writable by others; anyone could replace the program", exe)
		return
	}
	if fi.Mode().Perm()&0o020 != 0 {
		c.warnf(key, "%s is writable by its group", exe)
	}
	dir := filepath.Dir(exe)
	di, err := os.Stat(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.errorf(key, "%v", err)
		}
		return
	}
	if di.Mode().Perm()&0o002 != 0 && di.Mode()&fs.ModeSticky == 0 {
		c.errorf(key, "directory %s is writable by others; anyone could replace the program", dir)
	}
}
