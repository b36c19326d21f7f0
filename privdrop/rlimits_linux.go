// SPDX-License-Identifier: Apache-2.0

package privdrop

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// rlimitNames names the resources for messages, indexed by unix.RLIMIT_*;
// a resource outside it is one the helper does not know (helper_linux.c
// has the same table).
var rlimitNames = [...]string{
	unix.RLIMIT_CPU:        "RLIMIT_CPU",
	unix.RLIMIT_FSIZE:      "RLIMIT_FSIZE",
	unix.RLIMIT_DATA:       "RLIMIT_DATA",
	unix.RLIMIT_STACK:      "RLIMIT_STACK",
	unix.RLIMIT_CORE:       "RLIMIT_CORE",
	unix.RLIMIT_RSS:        "RLIMIT_RSS",
	unix.RLIMIT_NPROC:      "RLIMIT_NPROC",
	unix.RLIMIT_NOFILE:     "RLIMIT_NOFILE",
	unix.RLIMIT_MEMLOCK:    "RLIMIT_MEMLOCK",
	unix.RLIMIT_AS:         "RLIMIT_AS",
	unix.RLIMIT_LOCKS:      "RLIMIT_LOCKS",
	unix.RLIMIT_SIGPENDING: "RLIMIT_SIGPENDING",
	unix.RLIMIT_MSGQUEUE:   "RLIMIT_MSGQUEUE",
	unix.RLIMIT_NICE:       "RLIMIT_NICE",
	unix.RLIMIT_RTPRIO:     "RLIMIT_RTPRIO",
	unix.RLIMIT_RTTIME:     "RLIMIT_RTTIME",
}

// validateRlimits refuses limits setrlimit would reject or that would
// leave the result to the order they are applied in.
func validateRlimits(limits []Rlimit) error {
	seen := make(map[int]bool, len(limits))
	for _, l := range limits {
		if l.Resource < 0 || l.Resource >= len(rlimitNames) {
			return fmt.Errorf("unknown resource limit %d", l.Resource)
		}
		name := rlimitNames[l.Resource]
		if seen[l.Resource] {
			return fmt.Errorf("%s is set twice", name)
		}
		seen[l.Resource] = true
		if l.Cur > l.Max {
			return fmt.Errorf("%s: soft limit %d is above the hard limit %d", name, l.Cur, l.Max)
		}
	}
	return nil
}
