// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/privdrop"
	"github.com/udsvisor/udsvisor/sockets"
	"github.com/udsvisor/udsvisor/supervisor"
)

// The state an upgrade hands to the binary it executes, in the same
// process. It travels in a sealed memfd, the last of the fds the exec
// passes (privdrop.ExecFDsEnv); the others are named by their index:
// index 0 is the binary that wrote the state (an O_PATH fd, the way
// back), index 1 the binary executed, then the supervisor's fds and the
// control sockets'. JSON, versioned by handoverFormat, bounded, decoded
// strictly; every field is checked again by the taker (T24).

// handoverFormat is the version of handoverState. A binary takes over
// only the format it knows; the probe asks before the exec.
const handoverFormat = 1

// The indexes with a fixed meaning.
const (
	fdOldExe = 0
	fdNewExe = 1
	fdFirst  = 2 // the first of the state's own
)

// maxStateBytes bounds the state a binary reads.
const maxStateBytes = 64 << 20

// refusedEnv carries, back to the old binary, why the new one refused
// the state.
const refusedEnv = "UDSVISOR_UPGRADE_REFUSED"

// maxRefusal bounds that message.
const maxRefusal = 1024

// handoverState is what passes through the exec.
type handoverState struct {
	Format int `json:"format"`
	// Pid is the process that wrote it: the exec keeps it, so a state
	// with another pid was not written for this process.
	Pid          int    `json:"pid"`
	Version      string `json:"version"`
	ConfigSHA256 string `json:"config_sha256"`
	// Config is the config file's bytes as they were loaded: the next
	// program, and the way back, run exactly this config.
	Config []byte `json:"config"`
	// Upgrades and LastError carry api.Upgrade's counters over.
	Upgrades    int               `json:"upgrades"`
	LastError   string            `json:"last_error,omitempty"`
	Control     sockets.Saved     `json:"control"`
	RootControl *sockets.Saved    `json:"root_control,omitempty"`
	Supervisor  *supervisor.Saved `json:"supervisor"`
}

// encodeState returns st as JSON.
func encodeState(st *handoverState) ([]byte, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode the state: %w", err)
	}
	if len(b) > maxStateBytes {
		return nil, fmt.Errorf("the state is %d bytes, more than %d", len(b), maxStateBytes)
	}
	return b, nil
}

// writeState returns a sealed memfd holding b.
func writeState(b []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("udsvisor-handover", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	f := os.NewFile(uintptr(fd), "udsvisor-handover")
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("write the state: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, os.NewSyscallError("fcntl F_ADD_SEALS", err)
	}
	return f, nil
}

// readState reads the state from the last of fds: a sealed memfd, no
// larger than maxStateBytes, holding one JSON value of the known format,
// written by this process.
func readState(fds []int) (*handoverState, error) {
	if len(fds) < fdFirst+1 {
		return nil, fmt.Errorf("%d fds passed; an upgrade passes at least %d", len(fds), fdFirst+1)
	}
	fd := fds[len(fds)-1]
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if err != nil || seals&want != want {
		return nil, fmt.Errorf("fd %d is not a sealed memfd", fd)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Size > maxStateBytes {
		return nil, fmt.Errorf("the state is larger than %d bytes", maxStateBytes)
	}
	b := make([]byte, st.Size)
	if n, err := unix.Pread(fd, b, 0); err != nil || n != len(b) {
		return nil, fmt.Errorf("read the state: %d of %d bytes: %v", n, len(b), err)
	}
	hs, err := decodeState(b)
	if err != nil {
		return nil, err
	}
	if hs.Pid != os.Getpid() {
		return nil, fmt.Errorf("the state was written by pid %d, not this process (%d)", hs.Pid, os.Getpid())
	}
	return hs, nil
}

// decodeState decodes b strictly: one JSON value of the known format,
// with the services and a config whose digest it carries.
func decodeState(b []byte) (*handoverState, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var hs handoverState
	if err := dec.Decode(&hs); err != nil {
		return nil, fmt.Errorf("decode the state: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode the state: data after it")
	}
	switch {
	case hs.Format != handoverFormat:
		return nil, fmt.Errorf("the state is format %d; this binary takes format %d", hs.Format, handoverFormat)
	case hs.Supervisor == nil:
		return nil, errors.New("the state has no services")
	}
	if err := checkDigest(&hs, sha256.Sum256(hs.Config)); err != nil {
		return nil, err
	}
	return &hs, nil
}

// taker hands out the inherited fds by index, each at most once, and
// only those that the state may name.
type taker struct {
	fds   []int
	taken map[int]bool
}

func (t *taker) take(i int) (int, error) {
	if i < fdFirst || i >= len(t.fds)-1 || t.taken[i] {
		return 0, fmt.Errorf("fd index %d: out of range or taken twice", i)
	}
	t.taken[i] = true
	return t.fds[i], nil
}

// closeRest closes the inherited fds that nothing took: the binaries'
// and the state's.
func (t *taker) closeRest() {
	for i, fd := range t.fds {
		if !t.taken[i] {
			unix.Close(fd)
		}
	}
}

// goBack re-executes the binary that wrote the state (index 0 of fds),
// in place, with the same fds and a word on why: the new binary refused
// to take over, and nothing has changed yet, so the old one takes its
// services up again. It returns only if that exec fails. It must run on
// the main thread, which forked every child, before the launcher takes
// the thread (privdrop). returning says this binary is the old one,
// back already: it has no way back of its own.
func goBack(fds []int, why error, returning bool) error {
	if len(fds) == 0 || returning {
		return why
	}
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("%w; cannot go back to the old binary: %v", why, err)
		}
	}
	msg := api.Printable(why.Error())
	if len(msg) > maxRefusal {
		msg = msg[:maxRefusal]
	}
	env := append(os.Environ(),
		privdrop.ExecFDsEnv+"="+strconv.Itoa(fds[0])+":"+strconv.Itoa(len(fds)), refusedEnv+"="+msg)
	err := syscall.Exec("/proc/self/fd/"+strconv.Itoa(fds[fdOldExe]), os.Args, env)
	return fmt.Errorf("%w; and going back to the old binary failed: %v", why, err)
}

// checkDigest compares a config's digest with the state's.
func checkDigest(hs *handoverState, sum [32]byte) error {
	if got := hex.EncodeToString(sum[:]); got != hs.ConfigSHA256 {
		return errors.New("the state's config is not the one that runs")
	}
	return nil
}
