// SPDX-License-Identifier: Apache-2.0

//go:build linux

package privdrop_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// TestT12SetuidBinaryDoesNotElevate runs a setuid-root copy of the probe
// as the service: no_new_privs, set by the helper, keeps every uid the
// service's. The same copy started as the test user without the helper
// comes up with euid 0, which shows that the file system honours the
// setuid bit and so that the first half proves the defence.
func TestT12SetuidBinaryDoesNotElevate(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	suid := setuidCopy(t, probePath, "probe-suid")
	var st unix.Stat_t
	if err := unix.Lstat(suid, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 0 || st.Mode&unix.S_ISUID == 0 {
		t.Fatalf("test setup: %s is uid %d mode %o, want setuid root", suid, st.Uid, st.Mode)
	}

	// Without the helper: the setuid bit works here.
	direct := exec.Command(suid, "probe")
	direct.Env = []string{"GODEBUG=containermaxprocs=0"}
	direct.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}}}
	out, err := direct.Output()
	if err != nil {
		t.Fatalf("run %s as %s without the helper: %v", suid, u.Name, err)
	}
	var plain report
	if err := json.Unmarshal(out, &plain); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if plain.UID != int(u.UID) || plain.EUID != 0 {
		t.Fatalf("test setup: without the helper the copy ran with uid %d euid %d, want %d and 0", plain.UID, plain.EUID, u.UID)
	}

	// Through the helper: no_new_privs ignores the bit.
	spec := probeSpec(t, u, 0, "")
	spec.Path = suid
	s, rep := mustStart(t, spec, nil, launchOpts{})
	if rep.UID != int(u.UID) || rep.EUID != int(u.UID) {
		t.Errorf("probe sees uid %d euid %d, want both %d", rep.UID, rep.EUID, u.UID)
	}
	ps := status(t, s.cmd.Process.Pid)
	if want := strings.TrimSpace(strings.Repeat(strconv.Itoa(int(u.UID))+"\t", 4)); ps["Uid"] != want {
		t.Errorf("Uid: %q, want %q", ps["Uid"], want)
	}
	for _, k := range []string{"CapPrm", "CapEff"} {
		if ps[k] != zeroCaps {
			t.Errorf("%s: %s, want %s", k, ps[k], zeroCaps)
		}
	}
}

// TestHelperRefusesSecureExec runs a set-user-ID-root copy of the helper
// (this test binary) as the test user, with a spec that asks for uid 0,
// as any local user could if the udsvisor binary were ever made setuid
// or given file capabilities. The helper must refuse (AT_SECURE) and exit
// 127; the command must not run, as root or at all.
func TestHelperRefusesSecureExec(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	suid := setuidCopy(t, self, "helper-suid")

	spec := probeSpec(t, u, 0, "")
	spec.UID, spec.GID = 0, 0
	s, err := launch(t, spec, nil, launchOpts{mutate: func(c *exec.Cmd) {
		c.Path, c.Args[0] = suid, suid
		c.SysProcAttr.Credential = &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}}
	}})
	if s == nil {
		t.Fatalf("start the setuid helper as %s: %v", u.Name, err)
	}
	const want = "launch helper: refusing to run: the exec gained privileges (AT_SECURE"
	if err == nil {
		// The probe runs and blocks: read its one line, not to EOF.
		line, _ := s.stdout.ReadString('\n')
		t.Fatalf("AfterStart: nil, want %q...; the command ran: %s", want, line)
	}
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("AfterStart: %v, want %q...", err, want)
	}
	if out := drain(t, s.stdout); out != "" {
		t.Errorf("the command ran: %s", out)
	}
	if code := exitCode(t, s); code != 127 {
		t.Errorf("helper exit status %d, want 127", code)
	}
}

// setuidCopy copies the program from to a set-user-ID-root file name in
// a testutil.RunDir and returns its path. The test is unavailable when
// /run is mounted nosuid, where the bit would have no effect.
func setuidCopy(t *testing.T, from, name string) string {
	t.Helper()
	dir := testutil.RunDir(t)
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Flags&unix.ST_NOSUID != 0 {
		testutil.Unavailable(t, "%s is on a nosuid mount: a setuid binary cannot elevate there anyway", dir)
	}
	suid := filepath.Join(dir, name)
	testutil.CopyFile(t, from, suid, 0o700)
	if err := os.Chown(suid, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	return suid
}
