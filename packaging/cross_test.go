// SPDX-License-Identifier: Apache-2.0

//go:build linux

package packaging

import (
	"os"
	"os/exec"
	"testing"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// The whole module builds and vets for the release targets other than
// the host: freebsd/amd64 without cgo (up is Linux-only there, and up and
// check say so; ctl, proxy and version work) and linux/arm64 with cgo
// through clang and Debian's arm64 cross libc, since the launch helper is
// C (issue 14, item 5). go vet also compiles every test file.
func TestCrossBuildAndVet(t *testing.T) {
	cc := arm64CC(t)
	for _, target := range []struct {
		name string
		env  []string
	}{
		{"freebsd-amd64", []string{"GOOS=freebsd", "GOARCH=amd64", "CGO_ENABLED=0"}},
		{"linux-arm64", []string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=1", "CC=" + cc}},
	} {
		t.Run(target.name, func(t *testing.T) {
			t.Parallel()
			for _, args := range [][]string{{"build", "./..."}, {"vet", "./..."}} {
				cmd := exec.Command("go", args...)
				cmd.Dir = ".."
				cmd.Env = append(os.Environ(), target.env...)
				if b, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("%v go %v: %v\n%s", target.env, args, err, b)
				}
			}
		})
	}
}

// arm64CC is the C compiler for linux/arm64 cgo builds, as the release
// script picks it (test.sh installs what it needs on amd64).
func arm64CC(t *testing.T) string {
	t.Helper()
	testutil.RequireCommand(t, "clang")
	testutil.RequireCommand(t, "aarch64-linux-gnu-ld")
	if _, err := os.Stat("/usr/aarch64-linux-gnu/include/stdio.h"); err != nil {
		testutil.Unavailable(t, "the arm64 cross libc is not installed: %v", err)
	}
	return "clang --target=aarch64-linux-gnu"
}
