// SPDX-License-Identifier: Apache-2.0

package config

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// maxFileSize bounds what Load reads; a services.toml is a few KiB.
const maxFileSize = 4 << 20

// configDirs refuses directories above the config file that someone but
// root could write (T29): they could swap the file for their own. Both
// the path as given and the one its symlinks lead to are walked; a sticky
// directory (such as /tmp) is fine, since others cannot replace what is
// in it.
func configDirs(path string) Errors {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil
	}
	paths := []string{filepath.Dir(abs)}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		paths = append(paths, filepath.Dir(real))
	}
	var errs Errors
	seen := map[string]bool{}
	for _, dir := range paths {
		for cur := dir; !seen[cur]; cur = filepath.Dir(cur) {
			seen[cur] = true
			fi, err := os.Lstat(cur)
			if err != nil || fi.Mode()&fs.ModeSymlink != 0 {
				continue // a symlink's target is walked as the resolved path
			}
			switch owner, writable := othersCanReplace(fi, true); {
			case owner != 0:
				errs = append(errs, &Error{File: path, Msg: fmt.Sprintf("is in directory %s, owned by uid %d, who could replace it; refusing", cur, owner)})
			case writable != 0:
				errs = append(errs, &Error{File: path, Msg: fmt.Sprintf("is in directory %s, which group or others may write (%04o), so they could replace it; refusing", cur, fi.Mode().Perm())})
			}
			if cur == "/" {
				break
			}
		}
	}
	return errs
}

// Load reads, decodes and validates path. On any problem it returns a nil
// *Config and an Errors (all problems, in file order).
//
// Like sshd's StrictModes it first refuses a file that others could have
// written (SECURITY-NOTES T19): anyone who can edit it chooses what runs as
// which user. Ownership by root is enforced only when running as root, so
// that an unprivileged `check` works on a user's own copy. A refused file
// is not parsed: its content is not the administrator's.
func Load(path string) (*Config, error) {
	fail := func(format string, args ...any) (*Config, error) {
		return nil, Errors{{File: path, Msg: fmt.Sprintf(format, args...)}}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: causeOf(err), Err: err}}
	}
	defer f.Close()
	// Stat the open file, not the path, so that the checked file is the
	// one read.
	fi, err := f.Stat()
	if err != nil {
		return nil, Errors{{File: path, Msg: causeOf(err), Err: err}}
	}
	if !fi.Mode().IsRegular() {
		return fail("is %s, not a regular file; refusing", describeType(fi.Mode()))
	}
	var errs Errors
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 && st.Uid != 0 {
		errs = append(errs, &Error{File: path, Msg: fmt.Sprintf("is owned by uid %d; refusing", st.Uid)})
	}
	switch perm := fi.Mode().Perm(); {
	case perm&0o022 == 0o022:
		errs = append(errs, &Error{File: path, Msg: "is writable by group and others; refusing"})
	case perm&0o020 != 0:
		errs = append(errs, &Error{File: path, Msg: "is writable by group; refusing"})
	case perm&0o002 != 0:
		errs = append(errs, &Error{File: path, Msg: "is writable by others; refusing"})
	}
	if os.Geteuid() == 0 {
		errs = append(errs, configDirs(path)...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, Errors{{File: path, Msg: causeOf(err), Err: err}}
	}
	if len(data) > maxFileSize {
		return fail("is larger than %d bytes; refusing", maxFileSize)
	}
	return Parse(path, data)
}

// causeOf drops the op and path from a *PathError, which Error already
// prints as the file name.
func causeOf(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

// Parse is Load on bytes already read (file is the name used in messages).
// It does not check file ownership.
func Parse(file string, data []byte) (*Config, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, Errors{decodeError(file, err)}
	}
	c := &checker{
		file: file, lines: locate(string(data)), somaxconn: readSomaxconn(),
		nrOpen: readSysctl("fs/nr_open"), capLastCap: readSysctl("kernel/cap_last_cap"),
	}
	cfg := &Config{File: file, SHA256: sha256.Sum256(data)}
	top := table{m: raw}
	c.unknown(top, "supervisor", "services")
	sup := table{key: "supervisor", m: map[string]any{}}
	if t, ok := c.subTable(top, "supervisor"); ok {
		sup = t
	}
	cfg.Supervisor = c.supervisor(sup)
	if services, ok := c.subTable(top, "services"); ok {
		for _, name := range sortedKeys(services.m) {
			if s := c.service(name, services.m[name]); s != nil {
				cfg.Services = append(cfg.Services, s)
			}
		}
	}
	var sockets []*Socket
	for _, s := range cfg.Services {
		sockets = append(sockets, s.Sockets...)
	}
	slices.SortStableFunc(sockets, func(a, b *Socket) int { return a.Line - b.Line })
	c.crossCheck(cfg.Supervisor.ControlSocket, sockets)
	c.sharedUsers(cfg.Services)
	c.sharedDirs(sockets)
	c.crossRoutes(cfg.Services)
	if len(c.errs) > 0 {
		return nil, sortByLine(c.errs)
	}
	cfg.Warnings = sortByLine(c.warns)
	return cfg, nil
}

// decodeError turns a decoder error (TOML syntax, a duplicate key or
// table) into an Error at its line.
func decodeError(file string, err error) *Error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return &Error{File: file, Msg: err.Error(), Err: err}
	}
	msg := strings.TrimSuffix(pe.Message, ".")
	// The decoder capitalises its messages; ours are lowercase.
	if r, n := utf8.DecodeRuneInString(msg); n > 0 && len(msg) > n {
		if next, _ := utf8.DecodeRuneInString(msg[n:]); unicode.IsLower(next) {
			msg = string(unicode.ToLower(r)) + msg[n:]
		}
	}
	return &Error{File: file, Line: pe.Position.Line, Msg: msg, Err: err}
}

func sortByLine(es Errors) Errors {
	slices.SortStableFunc(es, func(a, b *Error) int { return a.Line - b.Line })
	return es
}

// readSomaxconn returns net.core.somaxconn, or 0 if it cannot be read (the
// backlog warning is then skipped).
func readSomaxconn() int { return readSysctl("net/core/somaxconn") }

// readSysctl returns the integer at /proc/sys/name, or 0 if it cannot be
// read.
func readSysctl(name string) int {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return n
}

var supervisorKeys = []string{"control_socket", "control_mode", "control_group", "status_group", "log_format"}

// supervisor converts the [supervisor] table.
func (c *checker) supervisor(t table) Supervisor {
	c.unknown(t, supervisorKeys...)
	s := Supervisor{
		ControlSocket: DefaultControlSocket,
		ControlMode:   defaultControlMode,
		ControlGroup:  -1,
		StatusGroup:   -1,
		LogFormat:     "console",
	}
	if p, ok := c.str(t, "control_socket"); ok && c.unixPath(t.sub("control_socket"), p) {
		s.ControlSocket = p
	}
	if m, ok := c.socketMode(t, "control_mode"); ok {
		s.ControlMode = m
	}
	for _, g := range []struct {
		name string
		dst  *int
	}{{"control_group", &s.ControlGroup}, {"status_group", &s.StatusGroup}} {
		v, ok := t.m[g.name]
		if !ok {
			continue
		}
		name, gid, ok := c.groupValue(t.sub(g.name), v)
		if !ok {
			continue
		}
		*g.dst = int(gid)
		if name == "www-data" && g.name == "control_group" {
			// A web server that proxies to a socket can be steered into
			// connecting to another one (Apache CVE-2021-40438).
			c.warnf(t.sub(g.name), "www-data is a web server's group; a confused deputy could reach the control socket")
		}
	}
	c.controlAccess(t, s)
	if f, ok := c.str(t, "log_format"); ok {
		if f != "console" && f != "json" {
			c.errorf(t.sub("log_format"), "%q must be console or json", f)
		} else {
			s.LogFormat = f
		}
	}
	return s
}

// controlAccess warns when the control socket's mode and the groups do
// not fit. The socket belongs to root and control_group, so the members
// of a separate status_group pass the file mode only as others: without
// the others' bits they cannot even connect, and with them everyone can,
// which the peer check then refuses, as it is there for.
func (c *checker) controlAccess(t table, s Supervisor) {
	others := s.ControlMode & 0o006
	readers := s.StatusGroup >= 0 && s.StatusGroup != s.ControlGroup
	switch {
	case readers && others != 0o006:
		c.warnf(t.sub("status_group"), "its members cannot connect to the control socket, whose mode %04o admits only root and control_group; set control_mode = \"0666\" (the peer check still refuses everyone else)",
			uint32(s.ControlMode))
	case !readers && others != 0:
		c.warnf(t.sub("control_mode"), "\"%04o\" lets every local user connect; the peer check still applies", uint32(s.ControlMode))
	}
}

// sharedDirs warns when Unix sockets whose directory udsvisor will create
// ask for different groups or directory modes: it is created once, for
// one of them, and the others' group may then be unable to search it.
// sockets are in the order of the file.
func (c *checker) sharedDirs(sockets []*Socket) {
	first := map[string]*Socket{}
	for _, sk := range sockets {
		if sk.Path == "" {
			continue
		}
		dir := filepath.Dir(sk.Path)
		if _, err := c.lstat(dir); err == nil {
			continue // it exists; udsvisor creates nothing there
		}
		f, ok := first[dir]
		if !ok {
			first[dir] = sk
			continue
		}
		if f.GID != sk.GID || f.DirectoryMode != sk.DirectoryMode {
			c.warnf(sk.Key, "shares directory %s, which udsvisor creates once, with %s (%s): group %s and directory_mode %04o there, %s and %04o here; give them the same, or one socket's users may not reach it",
				dir, f.Key, c.at(f.Key), f.GroupName, uint32(f.DirectoryMode), sk.GroupName, uint32(sk.DirectoryMode))
		}
	}
}

// sharedUsers warns when services share a uid: each can signal, ptrace
// and read the /proc/PID/fd of the other, so isolation between them is
// gone. nobody is worse still, as unrelated daemons run as it too.
func (c *checker) sharedUsers(services []*Service) {
	first := map[uint32]*Service{}
	for _, s := range services {
		if s.User == "" {
			continue
		}
		key := joinKey(joinKey("services", s.Name), "user")
		if s.User == "nobody" {
			c.warnf(key, "nobody is shared with unrelated daemons; give the service its own user")
		}
		if f, ok := first[s.UID]; ok {
			c.warnf(key, "user %q is also the user of %s; the two can signal each other and read each other's /proc", s.User, joinKey("services", f.Name))
			continue
		}
		first[s.UID] = s
	}
}
