// SPDX-License-Identifier: Apache-2.0

//go:build linux

package proc

import (
	"os"
	"testing"
)

func TestStatFields(t *testing.T) {
	// A command name with spaces and a parenthesis, as a process may
	// choose; fields after it: state, ppid, ..., utime (14), stime (15),
	// cutime (16), cstime (17), ..., starttime (22).
	line := "123 (a b) c) S 1 123 123 0 -1 4194560 10 0 0 0 7 3 5 2 20 0 1 0 9999 1000 100 18446744073709551615"
	f, err := statFields([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if f[1] != 1 || f[11] != 7 || f[12] != 3 || f[13] != 5 || f[14] != 2 || f[19] != 9999 {
		t.Errorf("fields = %v", f)
	}
	if _, err := statFields([]byte("123 no parenthesis")); err == nil {
		t.Error("a line without a command name parsed")
	}
}

func TestPSSOfSelf(t *testing.T) {
	b, err := PSS([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if b < 1<<20 {
		t.Errorf("PSS of a Go test process = %d bytes, want over 1 MiB", b)
	}
	if _, err := PSS([]int{1 << 30}); err == nil {
		t.Error("PSS of a pid that cannot exist gave no error")
	}
}
