// SPDX-License-Identifier: Apache-2.0

package config

import "golang.org/x/sys/unix"

// rlimits are the names `limits` accepts on FreeBSD: the Linux names
// whose resource FreeBSD has (locks, msgqueue, nice, rtprio and
// sigpending are Linux-only).
var rlimits = map[string]int{
	"as":      unix.RLIMIT_AS,
	"core":    unix.RLIMIT_CORE,
	"cpu":     unix.RLIMIT_CPU,
	"data":    unix.RLIMIT_DATA,
	"fsize":   unix.RLIMIT_FSIZE,
	"memlock": unix.RLIMIT_MEMLOCK,
	"nofile":  unix.RLIMIT_NOFILE,
	"nproc":   unix.RLIMIT_NPROC,
	"rss":     unix.RLIMIT_RSS,
	"stack":   unix.RLIMIT_STACK,
}
