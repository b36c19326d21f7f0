// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// The staging directory a udsvisor killed mid-bind leaves behind is
// removed by the next bind of that socket once it is a minute old; a
// fresh one, or one holding anything but sockets, is left alone.
func TestLeftoverStageRemoved(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tc := range []struct {
		name    string
		age     time.Duration
		file    bool // a regular file in it too
		removed bool
	}{
		{"old, sockets only", 2 * time.Minute, false, true},
		{"fresh", 0, false, false},
		{"old, with a file", 2 * time.Minute, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(testutil.RunDir(t), "app")
			mkdir(t, dir, 0, 0, 0o755)
			stage := filepath.Join(dir, ".api.sock.stage")
			if err := os.Mkdir(stage, 0o700); err != nil {
				t.Fatal(err)
			}
			unix.Close(rawSocket(t, filepath.Join(stage, "api.sock"), unix.SOCK_STREAM, false))
			if tc.file {
				if err := os.WriteFile(filepath.Join(stage, "keep"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			then := time.Now().Add(-tc.age)
			if err := os.Chtimes(stage, then, then); err != nil {
				t.Fatal(err)
			}
			l := bindT(t, newBinder(), Spec{Path: filepath.Join(dir, "api.sock"), Mode: 0o600, DirMode: 0o755, Backlog: 1})
			defer l.Close()
			want := []string{"api.sock", ".api.sock.udsvisor"}
			if !tc.removed {
				want = append(want, ".api.sock.stage")
			}
			wantEntries(t, dir, want...)
			if _, err := os.Lstat(stage); (err == nil) == tc.removed {
				t.Errorf("leftover staging directory: removed %v, want %v", err != nil, tc.removed)
			}
		})
	}
}
