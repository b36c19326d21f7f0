// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// When stderr is the journal (JOURNAL_STREAM names it), every line
// carries its syslog priority and no timestamp, so that journalctl -p
// finds warnings; -log-level drops what is below it (issue 10, item 12).
func TestJournalLinesAndLogLevel(t *testing.T) {
	testutil.EnsureUser(t, "udsv-a")
	dir := testutil.RunDir(t)
	cfg := filepath.Join(dir, "services.toml")
	// A shared user draws a warning; the service's start is info.
	text := fmt.Sprintf("[supervisor]\ncontrol_socket = %q\n\n[services.a]\ncommand = [\"/bin/sleep\", \"infinity\"]\nuser = \"nobody\"\n",
		filepath.Join(dir, "ctl", "control.sock"))
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, journalStream bool, args ...string) string {
		t.Helper()
		p := testutil.StartUp(t, udsvisorBin, cfg, testutil.UpOptions{Args: args, JournalStream: journalStream, Notify: true})
		// READY=1 whatever the log level: the signal handlers are in
		// place, so SIGTERM stops udsvisor cleanly.
		p.WaitReady(t)
		if err := p.Stop(t); err != nil {
			t.Fatalf("udsvisor up: %v", err)
		}
		return p.Log()
	}

	t.Run("journal", func(t *testing.T) {
		out := run(t, true)
		prio := regexp.MustCompile(`^<[0-7]>`)
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if !prio.MatchString(line) || regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:`).MatchString(line) {
				t.Errorf("journal line without a priority or with a timestamp: %q", line)
			}
		}
		if !regexp.MustCompile(`(?m)^<4>config warning`).MatchString(out) || !regexp.MustCompile(`(?m)^<6>udsvisor is up`).MatchString(out) {
			t.Errorf("want a <4> warning and a <6> info line:\n%s", out)
		}
	})
	t.Run("log-level warn", func(t *testing.T) {
		out := run(t, false, "-log-level", "warn")
		if strings.Contains(out, "INFO") || !strings.Contains(out, "WARN") {
			t.Errorf("-log-level warn printed:\n%s", out)
		}
	})
	t.Run("bad level", func(t *testing.T) {
		err := exec.Command(udsvisorBin, "up", "-c", cfg, "-log-level", "loud").Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("-log-level loud: %v, want exit status 2", err)
		}
	})
}
