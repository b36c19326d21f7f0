package privdrop

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"
)

// The helper learns where its two pipes are from the environment rather
// than from fixed fd numbers: the sockets must sit at 3.. (the
// socket-activation protocol), so the pipes follow them at 3+n and 4+n,
// and the helper cannot know n before it has read the spec.
const (
	envSpecFD = "_UDSVISOR_SPEC_FD"
	envErrFD  = "_UDSVISOR_ERR_FD"
)

// Bounds on what crosses the pipes; both ends are udsvisor, but a helper
// that misbehaves must not make the supervisor buffer without limit.
const (
	maxSpecBytes = 4 << 20
	maxErrBytes  = 64 << 10
)

// wireSpec is what the supervisor writes to the helper's spec pipe.
type wireSpec struct {
	Spec *Spec `json:"spec"`
	// ParentPID lets the helper notice that the supervisor died before
	// the helper re-armed its parent-death signal (see Main).
	ParentPID int `json:"parent_pid"`
}

// wireError is what the helper writes to the error pipe when it gives up.
// The errno travels as a number so that the supervisor gets back an error
// that errors.Is matches against fs.ErrPermission, fs.ErrNotExist, etc.
type wireError struct {
	Op    string  `json:"op"`
	Path  string  `json:"path,omitempty"`
	Errno uintptr `json:"errno,omitempty"`
	Msg   string  `json:"msg,omitempty"`
}

// toWire flattens err, which the helper builds as *os.PathError,
// *os.SyscallError or a plain error with op as its prefix.
func toWire(op string, err error) wireError {
	var pe *os.PathError
	var se *os.SyscallError
	var errno syscall.Errno
	switch {
	case errors.As(err, &pe) && errors.As(pe.Err, &errno):
		return wireError{Op: pe.Op, Path: pe.Path, Errno: uintptr(errno)}
	case errors.As(err, &se) && errors.As(se.Err, &errno):
		return wireError{Op: se.Syscall, Errno: uintptr(errno)}
	default:
		return wireError{Op: op, Msg: err.Error()}
	}
}

// err rebuilds the helper's error so that it reads like the stdlib's:
// "exec /usr/bin/foo: permission denied", "setgroups: operation not
// permitted".
func (w wireError) err() error {
	switch {
	case w.Errno != 0 && w.Path != "":
		return &os.PathError{Op: w.Op, Path: w.Path, Err: syscall.Errno(w.Errno)}
	case w.Errno != 0:
		return os.NewSyscallError(w.Op, syscall.Errno(w.Errno))
	default:
		return fmt.Errorf("%s: %s", w.Op, w.Msg)
	}
}

// decodeHelperError turns the bytes read from the error pipe into the
// error AfterStart returns; b is never empty.
func decodeHelperError(b []byte) error {
	var w wireError
	if err := json.Unmarshal(b, &w); err != nil || w.Op == "" {
		return fmt.Errorf("launch helper: unreadable failure report %q", truncate(b, 200))
	}
	return w.err()
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
