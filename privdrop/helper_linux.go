package privdrop

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// helperOp prefixes helper failures that are not a single syscall's.
const helperOp = "launch helper"

// Main runs the launch helper: it reads the Spec from its pipe, becomes
// the service's user and execs the command. It never returns; on failure
// it reports on the error pipe and exits with status 127.
func Main() {
	// The exec must come from the thread whose signal mask, capability
	// sets and parent-death signal were set below: all three are per
	// thread, and execve keeps only the calling thread's.
	runtime.LockOSThread()

	errFD, err := fdFromEnv(envErrFD)
	if err != nil {
		// No pipe to report on: the command's stderr is the only
		// witness left.
		fmt.Fprintf(os.Stderr, "udsvisor: %s: %v\n", helperOp, err)
		os.Exit(127)
	}
	writeAll(errFD, encodeFailure(run()))
	os.Exit(127)
}

// encodeFailure is the report decodeHelperError reads back.
func encodeFailure(err error) []byte {
	b, merr := json.Marshal(toWire(helperOp, err))
	if merr != nil {
		return []byte(`{"op":"launch helper","msg":"unencodable error"}`)
	}
	return b
}

// run carries out the launch and returns only on failure. The order of
// the steps is part of the contract; each comment names what it prevents.
func run() error {
	ws, err := readSpec()
	if err != nil {
		return err
	}
	spec := ws.Spec

	// SIG_IGN survives execve, so a supervisor started under nohup, or
	// one that ignored HUP or PIPE, would make its services deaf to
	// them (SECURITY-NOTES 0.5, T15).
	if err := resetSignalDispositions(); err != nil {
		return err
	}

	// Go has no knob for no_new_privs; without it a setuid-root binary
	// or file capabilities would give the service root back (0.7, T12).
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl PR_SET_NO_NEW_PRIVS", err)
	}

	// While still root: only root may raise a hard limit above the
	// supervisor's, and RLIMIT_NPROC must be in place when setuid
	// counts the user's processes against it.
	if err := setRlimits(spec.Rlimits); err != nil {
		return err
	}

	if err := dropPrivileges(spec); err != nil {
		return err
	}

	// Changing the euid cleared the parent-death signal the supervisor
	// set at fork. Re-arm it, then make sure the supervisor did not die
	// in the window before it was armed: we would have been reparented
	// and nobody would ever kill the service (0.3).
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl PR_SET_PDEATHSIG", err)
	}
	if ppid := unix.Getppid(); ppid != ws.ParentPID {
		return fmt.Errorf("supervisor %d exited before the exec (parent is now %d)", ws.ParentPID, ppid)
	}

	unix.Umask(int(spec.Umask))
	// Entered as the service user, so that a directory it may not enter
	// fails here instead of being entered with root's rights; the path
	// comes from the config, never from an inherited fd (runc
	// CVE-2024-21626).
	if err := unix.Chdir(spec.Dir); err != nil {
		return &os.PathError{Op: "chdir", Path: spec.Dir, Err: err}
	}

	// LISTEN_PID must be the command's own pid, which exec keeps:
	// sd_listen_fds, go-systemd and gunicorn ignore the fds otherwise,
	// and gunicorn then unlinks the socket when it stops (0.11, 0.14).
	env := make([]string, 0, len(spec.Env)+1)
	env = append(env, spec.Env...)
	env = append(env, "LISTEN_PID="+strconv.Itoa(unix.Getpid()))

	// Every fd but 0-2 and the sockets closes at exec: whatever the
	// supervisor inherited or leaked must not reach the service (0.4,
	// T10). This also marks the error pipe, so EOF on it means the exec
	// succeeded.
	if err := prepareFDs(spec.NumFDs); err != nil {
		return err
	}

	// Last, so that nothing in between can block a signal again. exec
	// keeps this thread's mask, and a blocked SIGTERM would make the
	// service unstoppable but by SIGKILL.
	var none unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &none, nil); err != nil {
		return os.NewSyscallError("sigprocmask", err)
	}

	err = unix.Exec(spec.Path, spec.Args, env)
	return &os.PathError{Op: "exec", Path: spec.Path, Err: err}
}

// readSpec reads and checks the spec from the pipe named in the
// environment. The pipes sit right after the sockets (see Prepare),
// which is how the helper checks that NumFDs matches what it was given.
func readSpec() (*wireSpec, error) {
	specFD, err := fdFromEnv(envSpecFD)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(specFD), "spec")
	b, err := io.ReadAll(io.LimitReader(f, maxSpecBytes+1))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	if len(b) > maxSpecBytes {
		return nil, fmt.Errorf("read spec: more than %d bytes", maxSpecBytes)
	}
	var ws wireSpec
	if err := json.Unmarshal(b, &ws); err != nil {
		return nil, fmt.Errorf("decode spec: %w", err)
	}
	s := ws.Spec
	switch {
	case s == nil:
		return nil, errors.New("decode spec: no spec")
	case s.NumFDs < 0 || specFD != 3+s.NumFDs:
		return nil, fmt.Errorf("spec has %d sockets but its pipe is fd %d", s.NumFDs, specFD)
	case len(s.Args) == 0:
		return nil, errors.New("spec has an empty argv")
	}
	errFD, _ := fdFromEnv(envErrFD)
	if errFD != specFD+1 {
		return nil, fmt.Errorf("error pipe is fd %d, want %d", errFD, specFD+1)
	}
	for fd := 3; fd < 3+s.NumFDs; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("socket fd %d: %w", fd, err)
		}
	}
	return &ws, nil
}

func fdFromEnv(key string) (int, error) {
	v := os.Getenv(key)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return 0, fmt.Errorf("%s=%q is not an fd number", key, v)
	}
	return fd, nil
}

// writeAll writes b to fd, retrying short writes; errors are ignored
// because the helper exits right after and has nobody else to tell.
func writeAll(fd int, b []byte) {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		b = b[n:]
	}
}
