// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// leftoverAge is how long a staging directory must have been unchanged
// to count as the leftover of a udsvisor killed in the middle of a bind:
// a live one exists for the microseconds of a bind.
const leftoverAge = time.Minute

// stageName is the usual name of name's staging directory,
// ".NAME.stage", or a random one when that would exceed NAME_MAX.
func stageName(name string) string {
	if s := "." + name + ".stage"; len(s) <= 255 {
		return s
	}
	return tempName(name)
}

// removeLeftoverStage removes the staging directory n of dirfd and
// reports whether it did, if it is a leftover: a directory of root's
// with mode 0700, unchanged for leftoverAge, holding nothing but sockets.
// Anything else is left alone.
func removeLeftoverStage(dirfd int, n string) bool {
	var st unix.Stat_t
	if unix.Fstatat(dirfd, n, &st, unix.AT_SYMLINK_NOFOLLOW) != nil ||
		st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 0 || st.Mode&0o7777 != 0o700 ||
		time.Since(time.Unix(st.Mtim.Unix())) < leftoverAge {
		return false
	}
	fd, err := unix.Openat(dirfd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	stage := os.NewFile(uintptr(fd), n)
	defer stage.Close()
	entries, err := stage.Readdirnames(-1)
	if err != nil {
		return false
	}
	for _, e := range entries {
		var est unix.Stat_t
		if unix.Fstatat(fd, e, &est, unix.AT_SYMLINK_NOFOLLOW) != nil || est.Mode&unix.S_IFMT != unix.S_IFSOCK {
			return false // not only sockets: not ours to judge
		}
	}
	for _, e := range entries {
		if unix.Unlinkat(fd, e, 0) != nil {
			return false
		}
	}
	return unix.Unlinkat(dirfd, n, unix.AT_REMOVEDIR) == nil
}
