package privdrop

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// rlimitNames names the resources for messages, indexed by unix.RLIMIT_*;
// a resource outside it is one this helper does not know.
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

// setRlimits applies the limits and checks them with the kernel. It runs
// as root, before the privilege drop: only root may raise a hard limit.
//
// unix.Setrlimit goes through syscall.Setrlimit, which also tells the Go
// runtime not to put back its own start-up RLIMIT_NOFILE at the exec
// (go.dev/issue/46279); a raw prlimit of nofile would be undone there.
func setRlimits(limits []Rlimit) error {
	for _, l := range limits {
		name := rlimitNames[l.Resource]
		want := unix.Rlimit{Cur: l.Cur, Max: l.Max}
		if err := unix.Setrlimit(l.Resource, &want); err != nil {
			return &os.PathError{Op: "setrlimit", Path: name, Err: err}
		}
		var got unix.Rlimit
		if err := unix.Getrlimit(l.Resource, &got); err != nil {
			return &os.PathError{Op: "getrlimit", Path: name, Err: err}
		}
		if got != want {
			return fmt.Errorf("setrlimit %s: %d/%d afterwards, want %d/%d", name, got.Cur, got.Max, want.Cur, want.Max)
		}
	}
	return nil
}
