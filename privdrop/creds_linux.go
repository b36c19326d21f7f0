package privdrop

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// dropPrivileges sets the exact supplementary groups, then the gid, then
// the uid, and checks the result; the capability sets end up empty, or
// exactly spec.AmbientCaps. Any failure is fatal to the launch: nothing
// may run as root afterwards (T11).
//
// The syscall package's Setgroups, Setresgid and Setresuid apply to every
// thread of the process (since Go 1.16), so no Go thread stays root.
func dropPrivileges(spec *Spec) error {
	uid, gid := int(spec.UID), int(spec.GID)

	// Ambient capabilities would survive the exec of an ordinary
	// binary; the kernel drops them at setuid too, but only when no
	// securebit says otherwise. EINVAL: a kernel older than 4.3 has none.
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return os.NewSyscallError("prctl PR_CAP_AMBIENT_CLEAR_ALL", err)
	}

	if len(spec.AmbientCaps) > 0 {
		if err := keepCapsAcrossSetuid(); err != nil {
			return err
		}
	}

	// Always called, even with no groups: skipping it (NoSetGroups)
	// keeps root's groups, e.g. 0, 4 (adm), 27 (sudo) (0.6).
	groups := make([]int, len(spec.Groups))
	for i, g := range spec.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return os.NewSyscallError("setgroups", err)
	}
	// Real, effective and saved ids all change: with a root saved id
	// the service could switch back with setuid(0).
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return &os.PathError{Op: "setgid", Path: strconv.Itoa(gid), Err: err}
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return &os.PathError{Op: "setuid", Path: strconv.Itoa(uid), Err: err}
	}

	// Trust the kernel's answer, not the calls' return values: an id of
	// 4294967295 (-1) means "leave unchanged" to setresuid.
	if r, e, s := unix.Getresgid(); r != gid || e != gid || s != gid {
		return fmt.Errorf("setgid %d: gids are %d/%d/%d afterwards", gid, r, e, s)
	}
	if r, e, s := unix.Getresuid(); r != uid || e != uid || s != uid {
		return fmt.Errorf("setuid %d: uids are %d/%d/%d afterwards", uid, r, e, s)
	}
	got, err := unix.Getgroups()
	if err != nil {
		return os.NewSyscallError("getgroups", err)
	}
	if !sameSet(got, groups) {
		return fmt.Errorf("setgroups: groups are %v afterwards, want %v", got, groups)
	}

	if uid == 0 {
		// A root service (allowed by config) keeps root's
		// capabilities; no_new_privs still applies.
		return nil
	}
	return setCapabilities(spec.AmbientCaps)
}

func sameSet(a, b []int) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
