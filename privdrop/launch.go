// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package privdrop starts a service's command as its unprivileged user
// through a short re-exec of the udsvisor binary, the launch helper, in
// the shape of runc's init and its nsexec constructor.
//
// The supervisor side (Prepare, AfterStart, Abort) forks the helper as
// root with the listening sockets at fds 3.., then sends it the Spec over
// a pipe in a small length-prefixed binary encoding (wire_linux.h).
//
// The helper is C (helper_linux.c), not Go: an ELF constructor that glibc
// runs before main in every binary linking this package. It returns at
// once unless argv[1] is helperArg; in the helper it never returns, so
// the Go runtime of the udsvisor binary never starts there, which saves
// some 4 ms of CPU per launch. It resets signals, sets no_new_privs,
// gives the command a network namespace of its own if the Spec asks for
// one (PrivateNetwork), sets the resource limits, drops to the service's
// uid, gid and groups (with no capabilities but those granted), re-arms
// the parent-death signal, enters the working directory, adds
// LISTEN_PID=getpid() (and LISTEN_PIDFDID, its pidfd's inode id, where
// the kernel has pidfs), marks every other fd close-on-exec and execs the
// command. Failures before the exec come back over a close-on-exec pipe
// as a report that AfterStart turns into an *os.PathError,
// *os.SyscallError or plain error: EOF without a report means the exec
// succeeded.
//
// The binary needs nothing in main for this: linking the package is
// enough. It must be built with cgo (CGO_ENABLED=1 and a C compiler); a
// build without cgo fails on purpose (nocgo_linux.go).
package privdrop

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// helperArg is the hidden first argument that makes the constructor in
// helper_linux.c act as the launch helper before main ever runs. It is
// not a flag, so no flag parser ever sees it, and its odd spelling keeps
// it from clashing with a subcommand. wire_linux.h repeats it.
const helperArg = "__udsvisor_launch"

// selfExe is what Prepare re-executes when no explicit path is given: the
// running binary itself, even if the file on disk was replaced since, and
// reachable even when the binary's directory is closed to the service
// user (the helper execs it while still root).
const selfExe = "/proc/self/exe"

// Spec is everything the helper needs to become the service.
type Spec struct {
	Path string   // absolute path of the command
	Args []string // argv; Args[0] is what the program sees as its name
	// Env is the complete environment, KEY=VALUE, built by the
	// supervisor (LISTEN_FDS and LISTEN_FDNAMES included); the helper
	// adds LISTEN_PID, and LISTEN_PIDFDID where the kernel has pidfs,
	// and nothing else.
	Env []string
	// Dir is the working directory, entered after dropping privileges
	// so that the service user's permissions apply. Empty means "/".
	Dir    string
	UID    uint32
	GID    uint32
	Groups []uint32 // exact supplementary groups; empty means none
	Umask  uint32   // the command's umask (the supervisor runs with 0077)
	// NumFDs is the number of listening sockets, at fds 3..3+NumFDs-1.
	NumFDs int
	// Rlimits are set while the helper is still root, so that a hard
	// limit may exceed the supervisor's own; the others are inherited.
	Rlimits []Rlimit
	// AmbientCaps (unix.CAP_* numbers) are the only capabilities the
	// command keeps: they become its permitted, effective, inheritable
	// and ambient sets, and the ambient set survives the exec despite
	// no_new_privs. Empty means none at all. Not for uid 0, which keeps
	// root's capabilities.
	AmbientCaps []uintptr
	// PrivateNetwork runs the command in a new network namespace of its
	// own (unshare(CLONE_NEWNET)), made by the helper while still root,
	// in which only the loopback interface exists and is up, so that
	// 127.0.0.1 and ::1 work. The namespace is invisible to the host and
	// to every other process: a port the command binds on 127.0.0.1
	// there can be reached only through an fd created inside the
	// namespace. The sockets at fds 3.. keep working, since a socket
	// stays in the namespace it was made in, whoever holds its fd. Only
	// a command that keeps CAP_SYS_ADMIN (uid 0, or a grant in
	// AmbientCaps) could leave the namespace.
	PrivateNetwork bool
}

// Rlimit is one resource limit for the command.
type Rlimit struct {
	Resource int    // unix.RLIMIT_*
	Cur, Max uint64 // soft and hard; unix.RLIM_INFINITY for none
}

// Launch is one prepared start. The caller starts cmd itself and must
// then call exactly one of AfterStart (Start succeeded) or Abort (it
// failed), which release the pipes.
type Launch struct {
	// cmd runs the launch helper. Its SysProcAttr sets Pdeathsig, which
	// the kernel ties to the forking thread (golang/go#27505): call
	// Cmd.Start with runtime.LockOSThread held, from a thread that lives
	// as long as the service.
	cmd *exec.Cmd

	spec []byte

	specR, specW *os.File // the helper reads the spec from specR
	errR, errW   *os.File // the helper reports a failure on errW
}

// SetStdin makes f the command's stdin instead of /dev/null: a listening
// socket handed on fd 0, as systemd's StandardInput=socket and inetd do,
// for servers that look for an inherited socket there (Java's
// System.inheritedChannel). Call it before Start.
func (l *Launch) SetStdin(f *os.File) { l.cmd.Stdin = f }

// Prepare builds the exec.Cmd that runs the helper. exe is the binary to
// re-execute ("" means /proc/self/exe; tests may name another). files are
// the listening sockets, which become fds 3..; there must be
// spec.NumFDs of them. stdout and stderr become the command's (nil means
// /dev/null); stdin is /dev/null unless SetStdin names a socket.
//
// The helper runs as root until it drops privileges itself, so that it
// can exec /proc/self/exe even when the udsvisor binary sits in a
// directory the service user cannot read.
func Prepare(exe string, spec *Spec, files []*os.File, stdout, stderr *os.File) (*Launch, error) {
	if exe == "" {
		exe = selfExe
	}
	if err := validate(spec, files); err != nil {
		return nil, fmt.Errorf("launch %s: %w", specName(spec), err)
	}
	s := *spec
	if s.Dir == "" {
		s.Dir = "/"
	}
	b := encodeSpec(&s, os.Getpid())
	if len(b) > maxSpecBytes {
		return nil, fmt.Errorf("launch %s: spec is %d bytes, more than %d", s.Path, len(b), maxSpecBytes)
	}

	l := &Launch{spec: b}
	var err error
	if l.specR, l.specW, err = os.Pipe(); err != nil {
		return nil, fmt.Errorf("launch %s: %w", s.Path, err)
	}
	if l.errR, l.errW, err = os.Pipe(); err != nil {
		l.Abort()
		return nil, fmt.Errorf("launch %s: %w", s.Path, err)
	}

	n := len(files)
	extra := make([]*os.File, 0, n+2)
	extra = append(extra, files...)
	extra = append(extra, l.specR, l.errW) // fds 3+n and 4+n

	l.cmd = &exec.Cmd{
		Path: exe,
		Args: []string{exe, helperArg},
		// Never nil: a nil Env would hand the supervisor's whole
		// environment to the helper (T14).
		Env: []string{
			envSpecFD + "=" + strconv.Itoa(3+n),
			envErrFD + "=" + strconv.Itoa(4+n),
		},
		Stdin:      nil, // os/exec opens /dev/null
		ExtraFiles: extra,
		SysProcAttr: &syscall.SysProcAttr{
			// A new session has no controlling tty, so the service
			// cannot open the operator's terminal or inject input
			// with TIOCSTI (T13). Setpgid as well would give EPERM.
			Setsid:    true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	// Assigned only when set: a nil *os.File in an io.Writer is not a
	// nil interface, and os/exec would leave fd 1 or 2 closed.
	if stdout != nil {
		l.cmd.Stdout = stdout
	}
	if stderr != nil {
		l.cmd.Stderr = stderr
	}
	return l, nil
}

// AfterStart must be called once l.cmd.Start has succeeded. It sends the
// spec to the helper and waits until the helper has either exec'd the
// command (nil) or reported why it could not, e.g. `exec /usr/bin/foo:
// permission denied` or `setgroups: operation not permitted`; the helper
// then exits with status 127 and the caller reaps it as usual.
//
// AfterStart blocks for as long as the helper runs; killing
// l.cmd.Process makes it return. A helper that dies before the exec
// without a report (killed, crashed) also reads as success: the caller
// learns of it from Wait.
func (l *Launch) AfterStart() error {
	// Our copies of the helper's ends must go first: the error pipe only
	// reaches EOF once every write end is closed, and the spec pipe's
	// read end would keep a write to a dead helper from failing.
	l.specR.Close()
	l.errW.Close()

	_, werr := l.specW.Write(l.spec)
	l.specW.Close()

	b, rerr := io.ReadAll(io.LimitReader(l.errR, maxErrBytes))
	l.errR.Close()

	switch {
	case len(b) > 0:
		// Also covers a failed write: a helper that failed before
		// reading its spec says why here.
		return decodeHelperError(b)
	case rerr != nil:
		return fmt.Errorf("launch helper: read failure report: %w", rerr)
	case werr != nil:
		return fmt.Errorf("launch helper: send spec: %w", werr)
	}
	return nil
}

// Abort releases the pipes when l.cmd.Start failed.
func (l *Launch) Abort() {
	for _, f := range []*os.File{l.specR, l.specW, l.errR, l.errW} {
		if f != nil {
			f.Close()
		}
	}
}

func specName(spec *Spec) string {
	if spec == nil || spec.Path == "" {
		return "command"
	}
	return spec.Path
}

// validate rejects what the helper could not carry out faithfully.
// Everything here should already have been refused by config validation
// with a better message; this is the last line before a fork.
func validate(spec *Spec, files []*os.File) error {
	if spec == nil {
		return errors.New("no spec")
	}
	if !filepath.IsAbs(spec.Path) {
		// The helper changes directory before the exec, so a
		// relative path would resolve against the service's dir.
		return fmt.Errorf("path %q is not absolute", spec.Path)
	}
	if len(spec.Args) == 0 {
		return errors.New("empty argv")
	}
	if spec.Dir != "" && !filepath.IsAbs(spec.Dir) {
		return fmt.Errorf("working directory %q is not absolute", spec.Dir)
	}
	if spec.UID == math.MaxUint32 || spec.GID == math.MaxUint32 {
		// (uid_t)-1 means "leave unchanged" to setresuid(2).
		return fmt.Errorf("uid %d or gid %d is the reserved id -1", spec.UID, spec.GID)
	}
	if spec.Umask > 0o777 {
		return fmt.Errorf("umask %#o is not a permission mask", spec.Umask)
	}
	if len(spec.Groups) > maxGroups {
		return fmt.Errorf("%d supplementary groups, more than the kernel's %d", len(spec.Groups), maxGroups)
	}
	if spec.NumFDs != len(files) {
		return fmt.Errorf("NumFDs is %d but %d files were given", spec.NumFDs, len(files))
	}
	for i, f := range files {
		if f == nil {
			return fmt.Errorf("socket %d is nil", i)
		}
	}
	if err := validateRlimits(spec.Rlimits); err != nil {
		return err
	}
	if err := validateCaps(spec.AmbientCaps, spec.UID); err != nil {
		return err
	}
	for _, s := range append([]string{spec.Path, spec.Dir}, spec.Args...) {
		if strings.IndexByte(s, 0) >= 0 {
			return fmt.Errorf("%q contains a NUL byte", s)
		}
	}
	for _, kv := range spec.Env {
		k, _, ok := strings.Cut(kv, "=")
		switch {
		case !ok || k == "":
			return fmt.Errorf("environment entry %q is not KEY=VALUE", kv)
		case strings.IndexByte(kv, 0) >= 0:
			return fmt.Errorf("environment entry %q contains a NUL byte", kv)
		case k == "LISTEN_PID" || k == "LISTEN_PIDFDID":
			// Only the helper knows the command's pid; a second
			// LISTEN_PID would leave the command to pick one.
			return fmt.Errorf("environment sets %s, which the helper adds", k)
		}
	}
	return nil
}
