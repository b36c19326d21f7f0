// SPDX-License-Identifier: Apache-2.0

//go:build linux

package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// rcSubr stands in for FreeBSD's /etc/rc.subr: just enough of
// run_rc_command to run the script's hooks in the order rc.subr does
// (precmd, then the command, which here is only printed).
const rcSubr = `
load_rc_config() { :; }
run_rc_command() {
	case "$1" in
	start)
		for f in $required_files; do [ -r "$f" ] || { echo "missing $f"; return 1; }; done
		eval "$start_precmd" || { echo "start refused"; return 1; }
		echo "exec $command $command_args" ;;
	reload)
		eval "$reload_precmd" || { echo "reload refused"; return 1; }
		echo "kill -$sig_reload" ;;
	configtest)
		case " $extra_commands " in *" configtest "*) ;; *) echo "no configtest"; return 1 ;; esac
		eval "$configtest_cmd" ;;
	*) echo "unknown $1"; return 1 ;;
	esac
}
`

// The rc.d script follows rc.subr's conventions (issue 14, item 5): an
// rcvar, reload and configtest as extra commands, start and reload
// refused when `udsvisor check` fails, and udsvisor up run under
// daemon(8) with the pid file of udsvisor itself. It runs here under
// Debian's sh against a stand-in rc.subr and a stand-in udsvisor.
func TestFreeBSDRcScript(t *testing.T) {
	b, err := os.ReadFile("freebsd/udsvisor")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", "-n", "freebsd/udsvisor").CombinedOutput(); err != nil {
		t.Fatalf("sh -n: %v\n%s", err, out)
	}
	for _, want := range []string{
		"PROVIDE: udsvisor", "KEYWORD: shutdown", "rcvar=udsvisor_enable",
		`extra_commands="reload configtest"`, `sig_reload="HUP"`,
		`: ${udsvisor_enable:="NO"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("rc.d script lacks %q", want)
		}
	}

	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	fake := filepath.Join(dir, "udsvisor")
	// The stand-in udsvisor logs its arguments and fails when told to.
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"$*\" >>"+log+"\n[ ! -e "+dir+"/fail ]\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	subr := filepath.Join(dir, "rc.subr")
	if err := os.WriteFile(subr, []byte(rcSubr), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "services.toml")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	script := strings.NewReplacer("/etc/rc.subr", subr, "/usr/local/bin/udsvisor", fake).Replace(string(b))
	rc := filepath.Join(dir, "rc.udsvisor")
	if err := os.WriteFile(rc, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(cmd string) (string, error) {
		c := exec.Command("sh", rc, cmd)
		c.Env = append(os.Environ(), "udsvisor_config="+cfg)
		// load_rc_config is a no-op here; rc.conf's setting comes in
		// through the environment, which the script's := defaults keep.
		out, err := c.CombinedOutput()
		return string(out), err
	}
	calls := func() string {
		b, _ := os.ReadFile(log)
		os.Remove(log)
		return string(b)
	}

	out, err := run("start")
	want := "exec /usr/sbin/daemon -f -S -T udsvisor -p /var/run/udsvisor.pid " + fake + " up -c " + cfg + "\n"
	if err != nil || out != want {
		t.Errorf("start printed %q (%v), want %q", out, err, want)
	}
	if got := calls(); got != "check -q -c "+cfg+"\n" {
		t.Errorf("start ran udsvisor %q before starting, want check -q -c %s", got, cfg)
	}
	if out, err := run("configtest"); err != nil || !strings.Contains(out, "sanity check") {
		t.Errorf("configtest: %q %v", out, err)
	}
	if got := calls(); got != "check -c "+cfg+"\n" {
		t.Errorf("configtest ran udsvisor %q, want check -c %s", got, cfg)
	}
	if err := os.WriteFile(filepath.Join(dir, "fail"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"start", "reload"} {
		out, err := run(cmd)
		if err == nil || !strings.Contains(out, cmd+" refused") {
			t.Errorf("%s with a broken config: %q %v, want it refused", cmd, out, err)
		}
	}
	if _, err := run("configtest"); err == nil {
		t.Error("configtest passed a broken config")
	}
}
