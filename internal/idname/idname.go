// SPDX-License-Identifier: Apache-2.0

// Package idname turns uids and gids into the names messages show. It is
// its own package so that the light client can share it with config,
// control and proxyconf without importing config's TOML decoder.
package idname

import (
	"os/user"
	"strconv"
)

// User returns the name of uid, or uid as a number when it has none (a
// uid without a passwd entry is still an owner to report).
func User(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
}

// Group returns the name of gid, or gid as a number when it has none.
func Group(gid uint32) string {
	id := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(id); err == nil {
		return g.Name
	}
	return id
}
