// SPDX-License-Identifier: Apache-2.0

package proxyconf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/internal/idname"
)

// Check reports, as warnings, every routed Unix socket that proxyUser (a
// name or a numeric uid) could not connect to once udsvisor has created
// it, for the proxy kind (one of Kinds): connect(2) needs search
// permission on each directory of the path and write permission on the
// socket (unix(7)). Existing directories are read from disk; those
// udsvisor will create are root:<socket group> with the socket's
// directory_mode. Membership is the user's primary group and its
// /etc/group memberships, as nginx's and Apache's workers get them from
// initgroups and Caddy from systemd's User=; HAProxy drops every
// supplementary group, so for haproxy only the primary group counts.
// Root is never refused. Each warning reads
// "file:line: services.api.sockets[0]: www-data cannot ...".
func Check(cfg *config.Config, kind, proxyUser string) ([]string, error) {
	who, err := lookupProxyUser(proxyUser, kind != "haproxy")
	if err != nil {
		return nil, err
	}
	if who.uid == 0 {
		return nil, nil
	}
	var warnings []string
	seen := map[*config.Socket]bool{}
	for _, svc := range cfg.Services {
		for _, r := range svc.Proxy {
			s := r.Socket
			if !s.IsUnix() || seen[s] {
				continue
			}
			seen[s] = true
			msgs, err := who.check(s)
			if err != nil {
				return nil, err
			}
			for _, m := range msgs {
				e := &config.Error{File: cfg.File, Line: s.Line, Key: s.Key, Msg: m}
				warnings = append(warnings, e.Error())
			}
		}
	}
	return warnings, nil
}

// proxyUser is the identity the proxy's workers connect with.
type proxyUser struct {
	name   string
	uid    uint32
	group  string // primary group name, for the suggested fix
	groups map[uint32]bool
	// dropped are the /etc/group memberships that do not count because
	// the proxy drops them (HAProxy), so that a warning says why.
	dropped map[uint32]bool
}

// lookupProxyUser finds the user name; its supplementary groups count
// only if supplementary.
func lookupProxyUser(name string, supplementary bool) (*proxyUser, error) {
	var u *user.User
	var err error
	if _, nerr := strconv.ParseUint(name, 10, 32); nerr == nil {
		u, err = user.LookupId(name)
	} else {
		u, err = user.Lookup(name)
	}
	var unknownName user.UnknownUserError
	var unknownID user.UnknownUserIdError
	switch {
	case errors.As(err, &unknownName) || errors.As(err, &unknownID):
		return nil, fmt.Errorf("unknown proxy user %q", name)
	case err != nil:
		return nil, fmt.Errorf("look up proxy user %q: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("proxy user %q: non-numeric uid %q", name, u.Uid)
	}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("proxy user %q: groups: %w", name, err)
	}
	p := &proxyUser{name: u.Username, uid: uint32(uid), group: u.Gid, groups: map[uint32]bool{}, dropped: map[uint32]bool{}}
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			if supplementary {
				p.groups[uint32(n)] = true
			} else {
				p.dropped[uint32(n)] = true
			}
		}
	}
	if n, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
		p.groups[uint32(n)] = true
		p.group = idname.Group(uint32(n))
	}
	return p, nil
}

// class picks the permission bits the kernel uses for this user: the
// owner's if it owns the file (even when the group's would allow more),
// else the group's if it is in the group, else the others'.
func (p *proxyUser) class(uid, gid uint32) string {
	switch {
	case p.uid == uid:
		return "owner"
	case p.groups[gid]:
		return "group"
	}
	return "other"
}

// allows reports whether mode grants bit (0o1 search, 0o2 write, in the
// others' position) to class.
func allows(class string, mode fs.FileMode, bit fs.FileMode) bool {
	switch class {
	case "owner":
		return mode&(bit<<6) != 0
	case "group":
		return mode&(bit<<3) != 0
	}
	return mode&bit != 0
}

// node is a file's owner, group and mode as the proxy will meet them.
type node struct {
	path     string
	uid, gid uint32
	mode     fs.FileMode
	// created is set for a directory udsvisor will create.
	created bool
}

func (n node) describe() string {
	return fmt.Sprintf("%s:%s %04o", idname.User(n.uid), idname.Group(n.gid), uint32(n.mode.Perm()))
}

// check returns the problems of one socket.
func (p *proxyUser) check(s *config.Socket) ([]string, error) {
	var msgs []string
	dirs, err := socketDirs(s)
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		class := p.class(d.uid, d.gid)
		if allows(class, d.mode, 0o1) {
			continue
		}
		msgs = append(msgs, fmt.Sprintf("%s cannot search %s (%s): %s", p.name, d.path, d.describe(), p.dirFix(d, class)))
		break // the directories below it cannot be reached anyway
	}
	sock := node{path: s.Path, uid: s.UID, gid: s.GID, mode: s.Mode}
	class := p.class(sock.uid, sock.gid)
	if !allows(class, sock.mode, 0o2) {
		msgs = append(msgs, fmt.Sprintf("%s cannot connect to %s: the socket is %s and %s", p.name, s.Path, sock.describe(), p.socketFix(s, class)))
	}
	return msgs, nil
}

// socketDirs lists the directories of the socket's path, outermost
// first, as they will be once udsvisor has created the missing ones.
func socketDirs(s *config.Socket) ([]node, error) {
	var paths []string
	for d := filepath.Dir(s.Path); ; d = filepath.Dir(d) {
		paths = append([]string{d}, paths...)
		if d == "/" {
			break
		}
	}
	var dirs []node
	missing := false
	for _, d := range paths {
		if !missing {
			fi, err := os.Stat(d)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				missing = true
			case err != nil:
				return nil, err
			default:
				st, ok := fi.Sys().(*syscall.Stat_t)
				if !ok {
					return nil, fmt.Errorf("stat %s: no owner information", d)
				}
				dirs = append(dirs, node{path: d, uid: st.Uid, gid: st.Gid, mode: fi.Mode()})
				continue
			}
		}
		dirs = append(dirs, node{path: d, uid: 0, gid: s.GID, mode: s.DirectoryMode, created: true})
	}
	return dirs, nil
}

// dirFix explains why directory d is closed to the proxy and what to
// change: the config for a directory udsvisor creates, the directory
// itself otherwise.
func (p *proxyUser) dirFix(d node, class string) string {
	withX := d.mode.Perm() | 0o010
	switch {
	case class == "group" && d.created:
		return fmt.Sprintf("its group may not search it (set directory_mode = \"%04o\")", uint32(withX))
	case class == "group":
		return fmt.Sprintf("its group may not search it (chmod g+x %s)", d.path)
	case d.created && d.mode&0o010 != 0:
		return fmt.Sprintf("%s (set group = %q)", p.notIn(d.gid), p.group)
	case d.created:
		return fmt.Sprintf("%s (set group = %q and directory_mode = \"%04o\")", p.notIn(d.gid), p.group, uint32(withX))
	case d.mode&0o010 != 0:
		return fmt.Sprintf("%s (chgrp %s %s)", p.notIn(d.gid), p.group, d.path)
	}
	return fmt.Sprintf("%s (chmod o+x %s)", p.notIn(d.gid), d.path)
}

// notIn says why the user does not count as a member of group gid.
func (p *proxyUser) notIn(gid uint32) string {
	if p.dropped[gid] {
		return fmt.Sprintf("HAProxy drops %s's supplementary group %s and keeps only %s", p.name, idname.Group(gid), p.group)
	}
	return fmt.Sprintf("%s is not in group %s", p.name, idname.Group(gid))
}

// socketFix explains why the socket refuses the proxy and what to set.
func (p *proxyUser) socketFix(s *config.Socket, class string) string {
	switch class {
	case "owner":
		return fmt.Sprintf("its owner %s has no write permission (set mode = \"%04o\")", p.name, uint32(s.Mode.Perm()|0o200))
	case "group":
		return fmt.Sprintf("its group has no write permission (set mode = \"%04o\")", uint32(s.Mode.Perm()|0o020))
	}
	if s.Mode&0o020 != 0 {
		return fmt.Sprintf("%s (set group = %q)", p.notIn(s.GID), p.group)
	}
	return fmt.Sprintf("%s (set group = %q and mode = \"%04o\")", p.notIn(s.GID), p.group, uint32(s.Mode.Perm()|0o020))
}
