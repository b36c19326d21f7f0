// SPDX-License-Identifier: Apache-2.0

//go:build linux

package packaging

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// unitLine returns the value of key= in the systemd unit.
func unitLine(t *testing.T, key string) string {
	t.Helper()
	f, err := os.Open("systemd/udsvisor.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+"="); ok {
			return v
		}
	}
	t.Fatalf("the unit has no %s=", key)
	return ""
}

// The unit's ExecReload waits for the reload and fails when the config
// is refused, so that `systemctl reload udsvisor` reports it (issue 10,
// item 11). PID 1 is not systemd here: the command line is run as
// systemd would run it, against a real udsvisor.
func TestUnitReloadReportsRefusal(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.RunDir(t)
	bin, err := testutil.Build(dir, "github.com/udsvisor/udsvisor/cmd/udsvisor")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "services.toml")
	good := "[supervisor]\ncontrol_socket = \"" + filepath.Join(dir, "ctl", "control.sock") + "\"\n\n" +
		"[services.sleeper]\ncommand = [\"/bin/sleep\", \"infinity\"]\nuser = \"nobody\"\n"
	if err := os.WriteFile(cfg, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	up := exec.Command(bin, "up", "-c", cfg)
	up.Stderr = &log
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		up.Process.Signal(os.Interrupt)
		up.Wait()
	})
	reload := strings.Fields(unitLine(t, "ExecReload"))
	if reload[0] != "/usr/local/bin/udsvisor" {
		t.Fatalf("ExecReload runs %s, want /usr/local/bin/udsvisor", reload[0])
	}
	run := func() (string, error) {
		args := strings.ReplaceAll(strings.Join(reload[1:], " "), "/etc/udsvisor/services.toml", cfg)
		b, err := exec.Command(bin, strings.Fields(args)...).CombinedOutput()
		return string(b), err
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		_, err := run()
		return err
	})
	if err := os.WriteFile(cfg, []byte(good+"bogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(); err == nil || !strings.Contains(out, "bogus") {
		t.Errorf("ExecReload with a broken config: %v %s, want a failure naming the bad key", err, out)
	}
	if err := os.WriteFile(cfg, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(); err != nil {
		t.Errorf("ExecReload with a good config: %v %s\nudsvisor log:\n%s", err, out, log.String())
	}
}
