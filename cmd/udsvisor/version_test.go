// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"regexp"
	"runtime"
	"testing"
)

// version prints one line: the version, the commit and the Go version,
// with the values stamped by -ldflags -X when there are any.
func TestVersionOutput(t *testing.T) {
	shape := regexp.MustCompile(`^udsvisor \S+ \(commit \S+, go\S+\)\n$`)
	for _, arg := range []string{"version", "--version"} {
		var out, errb bytes.Buffer
		if code := run([]string{arg}, &out, &errb); code != 0 {
			t.Fatalf("%s: exit %d, stderr %q", arg, code, errb.String())
		}
		if !shape.MatchString(out.String()) {
			t.Errorf("%s printed %q, want the shape %s", arg, out.String(), shape)
		}
	}

	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "0~git20261127.abc1234", "abc1234def"
	var out bytes.Buffer
	run([]string{"version"}, &out, &out)
	want := "udsvisor 0~git20261127.abc1234 (commit abc1234def, " + runtime.Version() + ")\n"
	if out.String() != want {
		t.Errorf("stamped version printed %q, want %q", out.String(), want)
	}
}
