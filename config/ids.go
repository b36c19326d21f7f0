package config

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
)

// isRiskyGroup reports groups that give root or root-equivalent access
// (sudo, docker's socket, raw disks) or read secrets (shadow, adm's logs):
// a service rarely needs them, and its compromise becomes the host's.
func isRiskyGroup(name string, gid uint32) bool {
	switch name {
	case "root", "sudo", "wheel", "docker", "shadow", "disk", "adm":
		return true
	}
	return gid == 0
}

// account is a resolved user.
type account struct {
	name string
	uid  uint32
	gid  uint32 // primary group
	home string
}

// lookupUser resolves a user name or, when s is all digits, a numeric uid
// (as systemd and chown do). Numeric ids must exist too: an unknown one
// has no primary group or home to default to.
func lookupUser(s string) (account, error) {
	var u *user.User
	var err error
	if isDigits(s) {
		u, err = user.LookupId(s)
	} else {
		u, err = user.Lookup(s)
	}
	if err != nil {
		var unknownName user.UnknownUserError
		var unknownID user.UnknownUserIdError
		if errors.As(err, &unknownName) || errors.As(err, &unknownID) {
			return account{}, fmt.Errorf("unknown user %q", s)
		}
		return account{}, fmt.Errorf("look up user %q: %w", s, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return account{}, fmt.Errorf("user %q has a non-numeric uid %q or gid %q", s, u.Uid, u.Gid)
	}
	return account{name: u.Username, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}, nil
}

// lookupGroup resolves a group name or numeric gid to its name and gid.
func lookupGroup(s string) (string, uint32, error) {
	var g *user.Group
	var err error
	if isDigits(s) {
		g, err = user.LookupGroupId(s)
	} else {
		g, err = user.LookupGroup(s)
	}
	if err != nil {
		var unknownName user.UnknownGroupError
		var unknownID user.UnknownGroupIdError
		if errors.As(err, &unknownName) || errors.As(err, &unknownID) {
			return "", 0, fmt.Errorf("unknown group %q", s)
		}
		return "", 0, fmt.Errorf("look up group %q: %w", s, err)
	}
	gid, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return "", 0, fmt.Errorf("group %q has a non-numeric gid %q", s, g.Gid)
	}
	return g.Name, uint32(gid), nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// userValue resolves the user at key in t; ok is false when absent or
// already reported.
func (c *checker) userValue(t table, name string) (account, bool) {
	v, ok := t.m[name]
	if !ok {
		return account{}, false
	}
	key := t.sub(name)
	s, ok := c.id(key, v)
	if !ok {
		return account{}, false
	}
	a, err := lookupUser(s)
	if err != nil {
		c.errorf(key, "%v", err)
		return account{}, false
	}
	return a, true
}

// groupValue resolves one group written at key.
func (c *checker) groupValue(key string, v any) (string, uint32, bool) {
	s, ok := c.id(key, v)
	if !ok {
		return "", 0, false
	}
	name, gid, err := lookupGroup(s)
	if err != nil {
		c.errorf(key, "%v", err)
		return "", 0, false
	}
	return name, gid, true
}

// warnRiskyGroup warns when a service runs with a privileged group.
func (c *checker) warnRiskyGroup(key, name string, gid uint32) {
	if isRiskyGroup(name, gid) {
		c.warnf(key, "group %q is root-equivalent or reads secrets; a compromised service would inherit that", name)
	}
}
