// SPDX-License-Identifier: Apache-2.0

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
	u, err := lookupID("user", s, user.LookupId, user.Lookup)
	if err != nil {
		return account{}, err
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return account{}, fmt.Errorf("user %q has a non-numeric uid %q or gid %q", s, u.Uid, u.Gid)
	}
	return account{name: u.Username, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}, nil
}

// lookupID looks s up with byID when it is all digits, else with byName.
// The error reads `unknown user "s"` (or group) when no entry has that
// name or id, whichever of os/user's four "unknown" types says so.
func lookupID[T any](kind, s string, byID, byName func(string) (*T, error)) (*T, error) {
	lookup := byName
	if isDigits(s) {
		lookup = byID
	}
	v, err := lookup(s)
	if err == nil {
		return v, nil
	}
	var (
		unknownUser    user.UnknownUserError
		unknownUID     user.UnknownUserIdError
		unknownGroup   user.UnknownGroupError
		unknownGroupID user.UnknownGroupIdError
	)
	if errors.As(err, &unknownUser) || errors.As(err, &unknownUID) ||
		errors.As(err, &unknownGroup) || errors.As(err, &unknownGroupID) {
		return nil, fmt.Errorf("unknown %s %q", kind, s)
	}
	return nil, fmt.Errorf("look up %s %q: %w", kind, s, err)
}

// lookupGroup resolves a group name or numeric gid to its name and gid.
func lookupGroup(s string) (string, uint32, error) {
	g, err := lookupID("group", s, user.LookupGroupId, user.LookupGroup)
	if err != nil {
		return "", 0, err
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
	v, key, ok := t.get(name)
	if !ok {
		return account{}, false
	}
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
