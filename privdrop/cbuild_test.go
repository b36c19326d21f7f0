// SPDX-License-Identifier: Apache-2.0

//go:build linux

package privdrop

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// TestCWarnings compiles the helper's C with -Werror, which cgo_linux.go
// leaves out of the shipped flags, under flags a build may add through
// CGO_CFLAGS: _GNU_SOURCE defined already (the files must not redefine
// it), fortification, the C23 that newer compilers default to, and a
// 32-bit target (where long is 32 bits).
func TestCWarnings(t *testing.T) {
	cc := strings.Fields(goEnv(t, "CC"))
	if len(cc) == 0 {
		t.Fatal("go env CC is empty")
	}
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"default", []string{"-O2"}},
		{"_GNU_SOURCE defined", []string{"-O2", "-D_GNU_SOURCE"}},
		{"fortified", []string{"-O2", "-D_FORTIFY_SOURCE=2"}},
		{"C23", []string{"-O2", "-std=gnu2x"}},
		{"32-bit", []string{"-O2", "-m32"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "32-bit" && !compiles(cc, "-m32") {
				// test.sh installs gcc-multilib on amd64.
				testutil.Unavailable(t, "%s cannot build for -m32 here (gcc-multilib is not installed)", cc[0])
			}
			for _, src := range []string{"helper_linux.c", "wire_linux.c"} {
				args := append(append(cc[1:len(cc):len(cc)], "-Wall", "-Wextra", "-Werror"), tc.flags...)
				args = append(args, "-c", src, "-o", os.DevNull)
				if out, err := exec.Command(cc[0], args...).CombinedOutput(); err != nil {
					t.Errorf("%s %s: %v\n%s", cc[0], strings.Join(args, " "), err, out)
				}
			}
		})
	}
}

// compiles reports whether cc builds an empty C file with flag.
func compiles(cc []string, flag string) bool {
	args := append(cc[1:len(cc):len(cc)], flag, "-x", "c", "-c", "-", "-o", os.DevNull)
	cmd := exec.Command(cc[0], args...)
	cmd.Stdin = strings.NewReader("#include <stdlib.h>\nint x;\n")
	return cmd.Run() == nil
}

func goEnv(t *testing.T, key string) string {
	t.Helper()
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", key, err)
	}
	return strings.TrimSpace(string(out))
}

// TestHelperWithoutConstructor builds a binary that links privdrop with
// the internal linker, which drops the C constructor, and runs it as the
// helper: its Go side must report that on the error pipe and exit 127,
// not run main and leave AfterStart to read the EOF as a successful exec.
func TestHelperWithoutConstructor(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "internallink")
	build := exec.Command("go", "build", "-ldflags=-linkmode=internal", "-o", exe, "./testdata/internallink")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags=-linkmode=internal: %v\n%s", err, out)
	}
	var stderr bytes.Buffer
	l, err := Prepare(exe, specHarness(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.cmd.Stderr = &stderr
	err = awaitHelper(t, l, false)
	const want = helperOp + ": the C constructor in helper_linux.c did not run"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("AfterStart: %v, want %q... (stderr: %q)", err, want, stderr.String())
	}
	if code := l.cmd.ProcessState.ExitCode(); code != 127 {
		t.Errorf("helper exit status %d, want 127", code)
	}
}

// TestHelperRejectsBadFDVariables checks that the helper takes only plain
// decimal numbers above 2 for its pipes. 4294967299 and 4294967300 are
// 2^32+3 and 2^32+4: a parser that lets a 32-bit long overflow takes
// them for fds 3 and 4, which are the real pipes here. A bad spec fd is
// reported on the error pipe; with a bad error fd there is no pipe to
// report on, so the message goes to stderr.
func TestHelperRejectsBadFDVariables(t *testing.T) {
	for _, tc := range []struct {
		name, key, val string
		report         bool // on the error pipe; else on stderr
	}{
		{"spec fd past 2^32", envSpecFD, "4294967299", true},
		{"spec fd past INT_MAX", envSpecFD, "2147483651", true},
		{"spec fd with a sign", envSpecFD, "+3", true},
		{"spec fd 0", envSpecFD, "0", true},
		{"error fd past 2^32", envErrFD, "4294967300", false},
		{"error fd empty", envErrFD, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Prepare("", specHarness(), nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, kv := range l.cmd.Env {
				if strings.HasPrefix(kv, tc.key+"=") {
					l.cmd.Env[i] = tc.key + "=" + tc.val
				}
			}
			var stderr bytes.Buffer
			l.cmd.Stderr = &stderr
			err = awaitHelper(t, l, false)
			ws := l.cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ws.Exited() || ws.ExitStatus() != 127 {
				t.Errorf("helper ended with %#x, want exit status 127 (the command ran?)", ws)
			}
			msg := tc.key + `="` + tc.val + `" is not an fd number`
			if tc.report {
				if want := helperOp + ": " + msg; err == nil || err.Error() != want {
					t.Errorf("AfterStart: %v, want %q", err, want)
				}
			} else if want := "udsvisor: " + helperOp + ": " + msg + "\n"; stderr.String() != want {
				t.Errorf("stderr %q, want %q (AfterStart: %v)", stderr.String(), want, err)
			}
		})
	}
}
