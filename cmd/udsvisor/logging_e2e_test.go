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
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// When stderr is the journal (JOURNAL_STREAM names it), every line
// carries its syslog priority and no timestamp, so that journalctl -p
// finds warnings; -log-level drops what is below it (issue 10, item 12).
func TestJournalLinesAndLogLevel(t *testing.T) {
	testutil.RequireRoot(t)
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
		logPath := filepath.Join(t.TempDir(), "stderr")
		f, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd := exec.Command(udsvisorBin, append([]string{"up", "-c", cfg}, args...)...)
		cmd.Stderr = f
		cmd.Env = os.Environ()
		if journalStream {
			var st unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			cmd.Env = append(cmd.Env, fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 20*time.Second, func() error {
			if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "udsvisor is up") && !strings.Contains(string(b), "shared") {
				return errors.New("not up yet")
			}
			return nil
		})
		time.Sleep(200 * time.Millisecond) // the lines that follow "up"; the check is on what was written
		cmd.Process.Signal(unix.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("udsvisor up: %v", err)
		}
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
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
