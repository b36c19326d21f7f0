// SPDX-License-Identifier: Apache-2.0

//go:build linux

package privdrop

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// decodeSpec is a reference decoder: what helper_linux.c's read_spec
// accepts, written again in Go, for the round-trip test and as the
// fuzz test's oracle. specFD is the fd the helper reads the spec from.
func decodeSpec(b []byte, specFD int) (*Spec, uint32, error) {
	r := wireReader{b: b}
	magic, n := r.u32(), r.u32()
	switch {
	case r.bad:
		return nil, 0, errors.New("short header")
	case magic != specMagic:
		return nil, 0, fmt.Errorf("magic %#x", magic)
	case uint64(n) > maxSpecBytes-8:
		return nil, 0, fmt.Errorf("length %d", n)
	case uint64(n) != uint64(len(r.b)):
		return nil, 0, fmt.Errorf("length %d, %d bytes follow", n, len(r.b))
	}
	var s Spec
	ppid := r.u32()
	s.UID, s.GID, s.Umask = r.u32(), r.u32(), r.u32()
	s.NumFDs = int(r.u32())
	flags := r.u32()
	s.PrivateNetwork = flags&flagPrivateNetwork != 0
	s.Path, s.Dir = r.str(), r.str()
	s.Args = r.strings()
	s.Env = r.strings()
	if n := r.u32(); n <= maxGroups {
		for i := uint32(0); i < n && !r.bad; i++ {
			s.Groups = append(s.Groups, r.u32())
		}
	} else {
		r.bad = true
	}
	if n := r.u32(); n <= uint32(len(rlimitNames)) {
		for i := uint32(0); i < n && !r.bad; i++ {
			s.Rlimits = append(s.Rlimits, Rlimit{Resource: int(r.u32()), Cur: r.u64(), Max: r.u64()})
		}
	} else {
		r.bad = true
	}
	if n := r.u32(); n <= 64 {
		for i := uint32(0); i < n && !r.bad; i++ {
			s.AmbientCaps = append(s.AmbientCaps, uintptr(r.u32()))
		}
	} else {
		r.bad = true
	}
	if !r.done() {
		return nil, 0, errors.New("malformed body")
	}
	if flags&^flagsKnown != 0 {
		return nil, 0, errors.New("unknown flags")
	}
	if err := checkDecoded(&s, specFD); err != nil {
		return nil, 0, err
	}
	return &s, ppid, nil
}

func (r *wireReader) strings() []string {
	var ss []string
	for i, n := 0, r.u32(); uint32(i) < n && !r.bad; i++ {
		ss = append(ss, r.str())
	}
	return ss
}

// checkDecoded is check_spec and the fd checks of read_spec.
func checkDecoded(s *Spec, specFD int) error {
	switch {
	case s.NumFDs != specFD-3:
		return errors.New("socket count")
	case len(s.Args) == 0:
		return errors.New("empty argv")
	case !strings.HasPrefix(s.Path, "/"), !strings.HasPrefix(s.Dir, "/"):
		return errors.New("relative path")
	case s.Umask > 0o777:
		return errors.New("umask")
	case len(s.AmbientCaps) > 0 && s.UID == 0:
		return errors.New("caps for root")
	}
	for _, kv := range s.Env {
		if strings.IndexByte(kv, '=') <= 0 || strings.HasPrefix(kv, "LISTEN_PID=") || strings.HasPrefix(kv, "LISTEN_PIDFDID=") {
			return errors.New("env")
		}
	}
	for _, l := range s.Rlimits {
		if l.Resource >= len(rlimitNames) || l.Cur > l.Max {
			return errors.New("rlimit")
		}
	}
	for _, c := range s.AmbientCaps {
		if c >= 64 {
			return errors.New("capability")
		}
	}
	return nil
}

// fullSpec uses every field of the wire format.
func fullSpec() *Spec {
	return &Spec{
		Path: "/bin/true", Args: []string{"true", "", "x y"}, Env: []string{"A=1", "B="},
		Dir: "/", UID: 65534, GID: 65534, Groups: []uint32{65534, 4}, Umask: 0o027, NumFDs: 0,
		Rlimits:        []Rlimit{{Resource: unix.RLIMIT_NOFILE, Cur: 1024, Max: unix.RLIM_INFINITY}, {Resource: unix.RLIMIT_CORE}},
		AmbientCaps:    []uintptr{unix.CAP_NET_BIND_SERVICE, unix.CAP_CHECKPOINT_RESTORE},
		PrivateNetwork: true,
	}
}

func TestEncodeSpecRoundTrip(t *testing.T) {
	want := fullSpec()
	b := encodeSpec(want, 4321)
	got, ppid, err := decodeSpec(b, 3)
	if err != nil {
		t.Fatal(err)
	}
	if ppid != 4321 || !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %d %+v\nwant %d %+v", ppid, got, 4321, want)
	}
}

// specHarness is the valid spec whose Launch runHelper reuses; only the
// bytes on the wire are replaced.
func specHarness() *Spec {
	return &Spec{Path: "/bin/true", Args: []string{"true"}, Dir: "/", UID: 65534, GID: 65534}
}

// runHelper starts the real helper (this test binary, whose constructor
// acts on helperArg) with wire as the bytes on its spec pipe, and returns
// how the helper ended and AfterStart's error. With userns the helper
// runs in a new user namespace where setgroups is denied: however valid
// the bytes, it can never get as far as an exec.
func runHelper(t *testing.T, wire []byte, userns bool) (syscall.WaitStatus, error) {
	t.Helper()
	l, err := Prepare("", specHarness(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.spec = wire
	if userns {
		a := l.cmd.SysProcAttr
		a.Cloneflags = syscall.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}}
	}
	err = awaitHelper(t, l, userns)
	return l.cmd.ProcessState.Sys().(syscall.WaitStatus), err
}

// awaitHelper starts the helper l prepared, returns AfterStart's error
// and waits for the helper to end. A helper that does not start fails
// the test, or makes it unavailable when mayBeDenied (the start asks for
// a user namespace, which the machine may refuse).
func awaitHelper(t *testing.T, l *Launch, mayBeDenied bool) error {
	t.Helper()
	if err := l.cmd.Start(); err != nil {
		l.Abort()
		if mayBeDenied {
			testutil.Unavailable(t, "start the helper: %v", err)
		}
		t.Fatal(err)
	}
	// Only turns a hang into a failure; the helper takes a millisecond.
	hung := time.AfterFunc(20*time.Second, func() { l.cmd.Process.Kill() })
	err := l.AfterStart()
	hung.Stop()
	l.cmd.Wait()
	return err
}

// mustReport checks that the helper reported a failure and exited 127,
// rather than crashing or exec'ing.
func mustReport(t *testing.T, ws syscall.WaitStatus, err error) {
	t.Helper()
	if ws.Signaled() {
		t.Fatalf("helper killed by %v (AfterStart: %v)", ws.Signal(), err)
	}
	if !ws.Exited() || ws.ExitStatus() != 127 {
		t.Errorf("helper ended with %#x, want exit status 127", ws)
	}
	if err == nil {
		t.Fatal("AfterStart: nil: the helper exec'd")
	}
	if strings.Contains(err.Error(), "unreadable failure report") {
		t.Errorf("AfterStart: %v", err)
	}
}

// specError reports whether err is the helper refusing its spec, as
// opposed to failing at a later step.
func specError(err error) bool {
	for _, p := range []string{"decode spec: ", "read spec", "spec "} {
		if strings.HasPrefix(err.Error(), helperOp+": "+p) {
			return true
		}
	}
	return false
}

// frame puts the header in front of body.
func frame(body []byte) []byte {
	var e wireEncoder
	e.u32(specMagic)
	e.u32(uint32(len(body)))
	return append(e, body...)
}

// upToDir is a valid body from the parent pid to the working directory;
// the counts follow it.
func upToDir() wireEncoder {
	var e wireEncoder
	for _, v := range []uint32{1, 65534, 65534, 0o022, 0, 0} {
		e.u32(v)
	}
	e.str("/bin/true")
	e.str("/")
	return e
}

// withCounts appends argv ["true"], no env and the given group, rlimit
// and capability counts with no elements after them.
func withCounts(groups, rlimits, caps uint32) []byte {
	e := upToDir()
	e.strs([]string{"true"})
	e.strs(nil)
	e.u32(groups)
	e.u32(rlimits)
	e.u32(caps)
	return frame(e)
}

// TestHelperRejectsBadSpecs feeds the real helper specs that are
// truncated, oversized, hold NUL bytes or counts that cannot fit: each
// must come back as a clear report and exit 127, never a crash or an
// exec.
func TestHelperRejectsBadSpecs(t *testing.T) {
	good := encodeSpec(specHarness(), 1)
	badSpec := func(edit func(*Spec)) []byte {
		s := specHarness()
		edit(s)
		return encodeSpec(s, 1) // no validate: the helper must catch it
	}
	withHeader := func(magic, n uint32, body []byte) []byte {
		var e wireEncoder
		e.u32(magic)
		e.u32(n)
		return append(e, body...)
	}
	const flagsAt = 8 + 5*4 // the flags word
	withFlags := func(f uint32) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint32(b[flagsAt:], f)
		return b
	}
	const pathAt = flagsAt + 4 // the path's length field
	hugePath := bytes.Clone(good)
	copy(hugePath[pathAt:], []byte{0xff, 0xff, 0xff, 0xff})
	noNUL := bytes.Clone(good)
	noNUL[pathAt+4+len("/bin/true")] = 'x'

	for _, tc := range []struct {
		name, wire, want string
	}{
		{"empty", "", "decode spec: 0 bytes, shorter than the header"},
		{"short header", string(good[:5]), "decode spec: 5 bytes, shorter than the header"},
		{"bad magic", string(withHeader(0x12345678, 0, nil)), "decode spec: magic 0x12345678"},
		{"length past the bound", string(withHeader(specMagic, maxSpecBytes-7, nil)), "read spec: more than 4194304 bytes"},
		{"oversized", string(withHeader(specMagic, 5<<20, make([]byte, 5<<20))), "read spec: more than 4194304 bytes"},
		{"truncated body", string(good[:len(good)-1]), fmt.Sprintf("decode spec: truncated: %d of %d bytes", len(good)-9, len(good)-8)},
		{"truncated field", string(frame(good[8 : len(good)-2])), "decode spec: truncated in capabilities"},
		{"trailing bytes", string(good) + "x", fmt.Sprintf("read spec: more than the %d bytes its header announces", len(good)-8)},
		{"bytes left over", string(frame(append(bytes.Clone(good[8:]), 0))), "decode spec: 1 bytes left over"},
		{"string past the end", string(hugePath), "decode spec: path of 4294967295 bytes at byte 28 runs past the end"},
		{"string not terminated", string(noNUL), "decode spec: path at byte 28 is not NUL-terminated"},
		{"NUL in path", string(badSpec(func(s *Spec) { s.Path = "/bin/tr\x00e" })), "decode spec: path at byte 28 contains a NUL byte"},
		{"NUL in argument", string(badSpec(func(s *Spec) { s.Args = []string{"a\x00"} })), "decode spec: argument at byte 52 contains a NUL byte"},
		{"NUL in environment", string(badSpec(func(s *Spec) { s.Env = []string{"A=\x00"} })), "decode spec: environment entry at byte 65 contains a NUL byte"},
		{"argument count overflow", string(frame(append(upToDir(), 0xff, 0xff, 0xff, 0xff))), "decode spec: 4294967295 arguments, more than 4194304"},
		{"argument count past the end", string(frame(append(upToDir(), 2, 0, 0, 0, 1, 0, 0, 0))), "decode spec: 2 arguments cannot fit in the 4 bytes left"},
		{"group count", string(withCounts(maxGroups+1, 0, 0)), "decode spec: 65537 groups, more than 65536"},
		{"group count past the end", string(withCounts(3, 0, 0)), "decode spec: 3 groups cannot fit in the 8 bytes left"},
		{"rlimit count", string(withCounts(0, 17, 0)), "decode spec: 17 resource limits, more than 16"},
		{"capability count", string(withCounts(0, 0, 65)), "decode spec: 65 capabilities, more than 64"},
		{"empty argv", string(badSpec(func(s *Spec) { s.Args = nil })), "spec has an empty argv"},
		{"socket count", string(badSpec(func(s *Spec) { s.NumFDs = 2 })), "spec has 2 sockets but its pipe is fd 3"},
		{"relative path", string(badSpec(func(s *Spec) { s.Path = "true" })), `spec path "true" is not absolute`},
		{"relative dir", string(badSpec(func(s *Spec) { s.Dir = "" })), `spec working directory "" is not absolute`},
		{"LISTEN_PID", string(badSpec(func(s *Spec) { s.Env = []string{"LISTEN_PID=1"} })), "spec environment sets LISTEN_PID"},
		{"LISTEN_PIDFDID", string(badSpec(func(s *Spec) { s.Env = []string{"LISTEN_PIDFDID=1"} })), "spec environment sets LISTEN_PIDFDID"},
		{"env without =", string(badSpec(func(s *Spec) { s.Env = []string{"=x"} })), `spec environment entry "=x" is not KEY=VALUE`},
		{"umask", string(badSpec(func(s *Spec) { s.Umask = 0o1000 })), "spec umask 01000 is not a permission mask"},
		{"unknown rlimit", string(badSpec(func(s *Spec) { s.Rlimits = []Rlimit{{Resource: 16}} })), "spec has unknown resource limit 16"},
		{"soft above hard", string(badSpec(func(s *Spec) { s.Rlimits = []Rlimit{{Resource: unix.RLIMIT_CORE, Cur: 2, Max: 1}} })),
			"spec RLIMIT_CORE: soft limit 2 is above the hard limit 1"},
		{"capability past the last word", string(badSpec(func(s *Spec) { s.AmbientCaps = []uintptr{64} })), "spec has unknown capability 64"},
		{"unknown flag", string(withFlags(flagPrivateNetwork | 1<<1)), "spec has unknown flags 0x2"},
		{"unknown high flag", string(withFlags(1 << 31)), "spec has unknown flags 0x80000000"},
		{"capabilities for root", string(badSpec(func(s *Spec) { s.UID, s.AmbientCaps = 0, []uintptr{unix.CAP_NET_BIND_SERVICE} })),
			"spec grants ambient capabilities to uid 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, err := runHelper(t, []byte(tc.wire), false)
			mustReport(t, ws, err)
			if want := helperOp + ": " + tc.want; err != nil && !strings.HasPrefix(err.Error(), want) {
				t.Errorf("AfterStart: %q, want %q...", err, want)
			}
			if _, _, oerr := decodeSpec([]byte(tc.wire), 3); oerr == nil {
				t.Errorf("the reference decoder accepts it")
			}
		})
	}
}

// FuzzHelperSpec feeds arbitrary bytes as the spec to the real helper,
// in a user namespace that stops any launch at setgroups. Whatever the
// bytes, the helper must report and exit 127, never crash or exec, and
// refuse the spec exactly when the reference decoder does.
func FuzzHelperSpec(f *testing.F) {
	f.Add(encodeSpec(specHarness(), 1))
	f.Add(encodeSpec(fullSpec(), 1))
	f.Add(withCounts(1, 1, 1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, wire []byte) {
		testutil.RequireRoot(t)
		ws, err := runHelper(t, wire, true)
		mustReport(t, ws, err)
		s, ppid, oerr := decodeSpec(wire, 3)
		switch {
		case oerr != nil && !specError(err):
			t.Errorf("the reference decoder refuses the spec (%v) but the helper went on: %v", oerr, err)
		case oerr == nil && specError(err):
			t.Errorf("the helper refuses a spec the reference decoder accepts: %v", err)
		case oerr == nil && !bytes.Equal(encodeSpec(s, int(ppid)), wire):
			t.Errorf("the spec does not encode back to the same bytes")
		}
	})
}
