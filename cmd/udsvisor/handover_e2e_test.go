// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
	"github.com/udsvisor/udsvisor/privdrop"
	"github.com/udsvisor/udsvisor/supervisor"
)

// A state that udsvisor did not write for this very process is refused
// (T24) before anything changes: no socket is bound or removed, no
// process started, and udsvisor goes back to the binary at index 0 (here
// a script that records why) with the reason.
func TestForgedStateRefused(t *testing.T) {
	testutil.EnsureUser(t, "udsv-a")
	dir := testutil.RunDir(t)
	cfg := filepath.Join(dir, "services.toml")
	text := fmt.Sprintf(`
[supervisor]
control_socket = %q
[services.web]
command = [%q]
user = "udsv-a"
[[services.web.sockets]]
path = %q
`, filepath.Join(dir, "ctl/control.sock"), testApp, filepath.Join(dir, "web/web.sock"))
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(text))
	digest := hex.EncodeToString(sum[:])
	record := filepath.Join(dir, "refused")
	recorder := filepath.Join(dir, "recorder")
	script := "#!/bin/sh\nprintf '%s' \"$" + refusedEnv + "\" > " + record + "\n"
	if err := os.WriteFile(recorder, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	plain, err := os.Open(cfg) // a regular file where a socket is claimed
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()

	stopped := supervisor.SavedInstance{Index: 0, State: supervisor.Stopped, Notify: -1}
	state := func(pid int, edit func(*handoverState)) any {
		hs := &handoverState{Format: handoverFormat, Pid: pid, Version: "forged", ConfigSHA256: digest, Config: []byte(text),
			Supervisor: &supervisor.Saved{Services: []supervisor.SavedService{{
				Name: "web", Want: 1, Rest: supervisor.Stopped, Instances: []supervisor.SavedInstance{stopped}}}}}
		if edit != nil {
			edit(hs)
		}
		return hs
	}
	for _, tc := range []struct {
		name   string
		sealed bool
		state  func(pid int) any
		want   string
	}{
		{"not sealed", false, func(pid int) any { return state(pid, nil) }, "not a sealed memfd"},
		{"another process's", true, func(pid int) any { return state(pid+1, nil) }, "not this process"},
		{"an unknown field", true, func(pid int) any {
			return map[string]any{"format": handoverFormat, "pid": pid, "supervisor": map[string]any{}, "evil": 1}
		}, `unknown field "evil"`},
		{"another config", true, func(pid int) any {
			return state(pid, func(hs *handoverState) { hs.ConfigSHA256 = strings.Repeat("0", 64) })
		}, "config is not the one that runs"},
		{"a pid that is no child", true, func(pid int) any {
			return state(pid, func(hs *handoverState) {
				hs.Supervisor.Services[0].Instances[0] = supervisor.SavedInstance{State: supervisor.Running, Pid: os.Getpid(), Notify: -1}
			})
		}, "is not a child of udsvisor"},
		{"an over-long status", true, func(pid int) any {
			return state(pid, func(hs *handoverState) {
				hs.Supervisor.Services[0].Instances[0].LastError = strings.Repeat("x", 5000)
			})
		}, "out of bounds"},
		{"a file claimed as a socket", true, func(pid int) any {
			return state(pid, func(hs *handoverState) {
				hs.Supervisor.Sockets = []supervisor.SavedSocket{{Key: "unix:" + filepath.Join(dir, "web/web.sock")}}
				ss := &hs.Supervisor.Sockets[0]
				ss.Path, ss.Mode, ss.Socket = filepath.Join(dir, "web/web.sock"), 0o660, 2
			})
		}, "is not a socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(record)
			exe, err := os.Open(recorder)
			if err != nil {
				t.Fatal(err)
			}
			defer exe.Close()
			// sh waits for a line on stdin, then becomes udsvisor: the
			// state can name udsvisor's pid, which is sh's.
			cmd := exec.Command("/bin/sh", "-c", `read _; exec "$0" up -c "$1"`, udsvisorBin, cfg)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var logs strings.Builder
			cmd.Stderr = &logs
			mem := memfd(t)
			// index 0: the way back; 1: the binary executed; 2: a plain
			// file; last: the state.
			cmd.ExtraFiles = []*os.File{exe, exe, plain, mem}
			cmd.Env = append(os.Environ(), privdrop.ExecFDsEnv+"=3:4")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(tc.state(cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := mem.Write(b); err != nil {
				t.Fatal(err)
			}
			if tc.sealed {
				seal(t, mem)
			}
			stdin.Write([]byte("go\n"))
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("udsvisor, then the way back: %v\n%s", err, logs.String())
				}
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("udsvisor neither refused nor went back within 30 s\n%s", logs.String())
			}
			got, err := os.ReadFile(record)
			if err != nil || !strings.Contains(string(got), tc.want) {
				t.Errorf("the way back was told %q (%v), want %q\n%s", got, err, tc.want, logs.String())
			}
			for _, p := range []string{"ctl", "web"} {
				if _, err := os.Lstat(filepath.Join(dir, p)); !os.IsNotExist(err) {
					t.Errorf("%s exists after a refused state: %v", p, err)
				}
			}
		})
	}
}

func memfd(t *testing.T) *os.File {
	t.Helper()
	fd, err := unix.MemfdCreate("forged", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "forged")
	t.Cleanup(func() { f.Close() })
	return f
}

func seal(t *testing.T, f *os.File) {
	t.Helper()
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		t.Fatal(err)
	}
}
