// SPDX-License-Identifier: Apache-2.0

//go:build linux

package privdrop

import (
	"encoding/binary"
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

// The wire format is laid out in wire_linux.h, which the helper's C
// shares; cgo_linux.go fails to compile if these copies differ from it.
// They are repeated here so that a build without cgo stops at the one
// clear error in nocgo_linux.go.
const (
	specMagic   = 0x324c4455 // "UDL2": the layout with the flags word
	reportMagic = 0x31524455 // "UDR1"
	// Bounds on what crosses the pipes; both ends are udsvisor, but a
	// helper that misbehaves must not make the supervisor buffer
	// without limit, nor a bad length make the helper allocate it.
	maxSpecBytes = 4 << 20
	maxErrBytes  = 64 << 10
	maxGroups    = 65536 // the kernel's NGROUPS_MAX
)

// The spec's flags word; the helper refuses a bit it does not know.
const (
	flagPrivateNetwork = 1 << 0 // Spec.PrivateNetwork
	flagsKnown         = flagPrivateNetwork
)

// helperOp prefixes helper failures that are not a single syscall's.
const helperOp = "launch helper"

// encodeSpec lays out s for the helper: a header (magic, length of the
// rest), then the fields in a fixed order, strings as length, bytes and
// a NUL. parentPID lets the helper notice that the supervisor died
// before it re-armed its parent-death signal. s must have passed
// validate, which rules out NUL bytes and out-of-range numbers.
func encodeSpec(s *Spec, parentPID int) []byte {
	e := wireEncoder(make([]byte, 8, 512))
	e.u32(uint32(parentPID))
	e.u32(s.UID)
	e.u32(s.GID)
	e.u32(s.Umask)
	e.u32(uint32(s.NumFDs))
	e.u32(specFlags(s))
	e.str(s.Path)
	e.str(s.Dir)
	e.strs(s.Args)
	e.strs(s.Env)
	e.u32(uint32(len(s.Groups)))
	for _, g := range s.Groups {
		e.u32(g)
	}
	e.u32(uint32(len(s.Rlimits)))
	for _, l := range s.Rlimits {
		e.u32(uint32(l.Resource))
		e.u64(l.Cur)
		e.u64(l.Max)
	}
	e.u32(uint32(len(s.AmbientCaps)))
	for _, c := range s.AmbientCaps {
		e.u32(uint32(c))
	}
	binary.LittleEndian.PutUint32(e[0:], specMagic)
	binary.LittleEndian.PutUint32(e[4:], uint32(len(e)-8))
	return e
}

// specFlags is the flags word for s.
func specFlags(s *Spec) uint32 {
	var f uint32
	if s.PrivateNetwork {
		f |= flagPrivateNetwork
	}
	return f
}

type wireEncoder []byte

func (e *wireEncoder) u32(v uint32) { *e = binary.LittleEndian.AppendUint32(*e, v) }
func (e *wireEncoder) u64(v uint64) { *e = binary.LittleEndian.AppendUint64(*e, v) }

func (e *wireEncoder) str(s string) {
	e.u32(uint32(len(s)))
	*e = append(append(*e, s...), 0)
}

func (e *wireEncoder) strs(ss []string) {
	e.u32(uint32(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}

// wireReader takes the same encoding apart. A read past the end or a
// malformed string sets bad and yields zero values, so that a caller
// checks once, at the end.
type wireReader struct {
	b   []byte
	bad bool
}

func (r *wireReader) take(n int) []byte {
	if r.bad || len(r.b) < n {
		r.bad = true
		return nil
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}

func (r *wireReader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *wireReader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *wireReader) str() string {
	n := r.u32()
	if r.bad || uint64(n) >= uint64(len(r.b)) {
		r.bad = true
		return ""
	}
	b := r.take(int(n) + 1)
	for _, c := range b[:n] {
		if c == 0 {
			r.bad = true
		}
	}
	if b[n] != 0 {
		r.bad = true
	}
	return string(b[:n])
}

// done reports whether everything was read and well formed.
func (r *wireReader) done() bool { return !r.bad && len(r.b) == 0 }

// wireError is what the helper writes to the error pipe when it gives
// up. The errno travels as a number so that the supervisor gets back an
// error that errors.Is matches against fs.ErrPermission,
// fs.ErrNotExist, etc.
type wireError struct {
	Op    string
	Path  string
	Errno syscall.Errno
	Msg   string
}

// err rebuilds the helper's error so that it reads like the stdlib's:
// "exec /usr/bin/foo: permission denied", "setgroups: operation not
// permitted", "launch helper: socket fd 4: bad file descriptor".
func (w wireError) err() error {
	switch {
	case w.Errno != 0 && w.Path != "":
		return &os.PathError{Op: w.Op, Path: w.Path, Err: w.Errno}
	case w.Errno != 0 && w.Msg != "":
		return fmt.Errorf("%s: %s: %w", w.Op, w.Msg, w.Errno)
	case w.Errno != 0:
		return os.NewSyscallError(w.Op, w.Errno)
	default:
		return fmt.Errorf("%s: %s", w.Op, w.Msg)
	}
}

// encode lays w out as helper_linux.c's udsv_fail writes it.
func (w wireError) encode() []byte {
	var e wireEncoder
	e.u32(reportMagic)
	e.u32(uint32(w.Errno))
	e.str(w.Op)
	e.str(w.Path)
	e.str(w.Msg)
	return e
}

// decodeHelperError turns the bytes read from the error pipe into the
// error AfterStart returns; b is never empty.
func decodeHelperError(b []byte) error {
	r := wireReader{b: b}
	magic := r.u32()
	w := wireError{Errno: syscall.Errno(r.u32())}
	w.Op, w.Path, w.Msg = r.str(), r.str(), r.str()
	if !r.done() || magic != reportMagic || w.Op == "" {
		return fmt.Errorf("%s: unreadable failure report %q", helperOp, truncate(b, 200))
	}
	return w.err()
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
