package privdrop

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// validateCaps refuses capabilities the helper could not grant exactly.
func validateCaps(caps []uintptr, uid uint32) error {
	if len(caps) == 0 {
		return nil
	}
	if uid == 0 {
		// dropPrivileges leaves a root service root's capabilities;
		// granting a few would only suggest a limit that is not there.
		return errors.New("ambient capabilities for uid 0, which keeps every capability")
	}
	seen := make(map[uintptr]bool, len(caps))
	for _, c := range caps {
		if c > unix.CAP_LAST_CAP {
			return fmt.Errorf("unknown capability %d", c)
		}
		if seen[c] {
			return fmt.Errorf("capability %d is listed twice", c)
		}
		seen[c] = true
	}
	return nil
}

// keepCapsAcrossSetuid makes the coming uid change keep the permitted
// set of this thread (securebits are per thread; this is the thread that
// execs), so that setCapabilities can then narrow it to the granted
// capabilities. execve clears the flag again.
func keepCapsAcrossSetuid() error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl PR_SET_KEEPCAPS", err)
	}
	return nil
}

// setCapabilities leaves this thread exactly caps in its permitted,
// effective and inheritable sets, raises each in the ambient set, and
// checks the result with the kernel. With no caps every set is emptied:
// setuid to non-zero already cleared permitted and effective unless
// SECBIT_NO_SETUID_FIXUP was inherited, but never the inheritable set.
// The sets are per thread; this is the thread that execs.
//
// The ambient set is what carries caps across the exec of a binary
// without file capabilities, no_new_privs or not (capabilities(7)); it
// may only hold what is both permitted and inheritable, hence the order.
func setCapabilities(caps []uintptr) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var want [2]unix.CapUserData // version 3 takes two 32-bit halves
	for _, c := range caps {
		bit := uint32(1) << (c % 32)
		want[c/32].Permitted |= bit
		want[c/32].Effective |= bit
		want[c/32].Inheritable |= bit
	}
	data := want // capset gets a copy, so want stays what we asked for
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return os.NewSyscallError("capset", err)
	}
	for _, c := range caps {
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, c, 0, 0); err != nil {
			return &os.PathError{Op: "prctl PR_CAP_AMBIENT_RAISE", Path: fmt.Sprint(c), Err: err}
		}
	}

	var got [2]unix.CapUserData
	if err := unix.Capget(&hdr, &got[0]); err != nil {
		return os.NewSyscallError("capget", err)
	}
	if len(caps) == 0 {
		for _, d := range got {
			if d.Effective|d.Permitted|d.Inheritable != 0 {
				return fmt.Errorf("capset: capabilities remain after dropping them: %+v", got)
			}
		}
		return nil
	}
	if got != want {
		return fmt.Errorf("capset: capabilities are %+v afterwards, want %+v", got, want)
	}
	return checkAmbient(caps)
}

// checkAmbient asks the kernel, capability by capability, whether the
// ambient set is exactly caps: capget does not report it, and whatever
// the supervisor had in it must not reach the command.
func checkAmbient(caps []uintptr) error {
	var want, got uint64
	for _, c := range caps {
		want |= 1 << c
	}
	for c := uintptr(0); c <= unix.CAP_LAST_CAP; c++ {
		set, err := unix.PrctlRetInt(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_IS_SET, c, 0, 0)
		if err == unix.EINVAL {
			break // past the kernel's last capability
		}
		if err != nil {
			return os.NewSyscallError("prctl PR_CAP_AMBIENT_IS_SET", err)
		}
		if set == 1 {
			got |= 1 << c
		}
	}
	if got != want {
		return fmt.Errorf("ambient capabilities are %#x afterwards, want %#x", got, want)
	}
	return nil
}
