// SPDX-License-Identifier: Apache-2.0

//go:build linux

package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// The bash completion, sourced in bash, completes subcommands, ctl
// actions, flags and signals, and service names from the table of
// `udsvisor ctl status`, asked on the socket given with -s. The udsvisor
// it runs is a stand-in script that prints the table a real one prints
// and records its arguments.
func TestBashCompletion(t *testing.T) {
	bash := testutil.RequireCommand(t, "bash")
	dir := t.TempDir()
	fake := filepath.Join(dir, "udsvisor")
	args := filepath.Join(dir, "args")
	script := "#!/bin/sh\necho \"$*\" >" + args + "\n" +
		"printf 'NAME   STATE    PID    UPTIME  RESTARTS  SOCKETS\\n" +
		"hello  running  10568  3m12s   0         http=/run/udsvisor-demo/hello.sock\\n" +
		"api@1  stopped  -      -       2         api=/run/api/api.sock\\n'\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		words string // the command line, the word to complete last
		want  string
	}{
		{"udsvisor ''", "up check ctl proxy demo version help"},
		{"udsvisor c", "check ctl"},
		{"udsvisor up -", "-c --config -log-level"},
		{"udsvisor up -log-level w", "warn"},
		{"udsvisor check -", "-c --config -q"},
		{"udsvisor proxy ''", "nginx apache caddy haproxy"},
		{"udsvisor proxy nginx --s", "--server-name --strict"},
		{"udsvisor ctl re", "restart resume reload"},
		{"udsvisor ctl -s /run/x.sock st", "status start stop"},
		{"udsvisor ctl logs hello -", "-s --socket -c --config -n -f --json"},
		{"udsvisor ctl restart ''", "hello api@1"},
		{"udsvisor ctl -s /run/x.sock stop h", "hello"},
		{"udsvisor ctl signal hello U", "USR1 USR2"},
		{"udsvisor ctl scale hello ''", ""},
	} {
		// COMP_WORDS[0] is the stand-in, as if it were the udsvisor on PATH.
		if got, err := complete(bash, strings.Replace(tt.words, "udsvisor", fake, 1)); err != nil || got != tt.want {
			t.Errorf("%s<TAB>: %q %v, want %q", tt.words, got, err, tt.want)
		}
	}
	// The last service completion above asked the socket given with -s.
	if b, err := os.ReadFile(args); err != nil || strings.TrimSpace(string(b)) != "ctl -s /run/x.sock status" {
		t.Errorf("the completion ran udsvisor %q %v, want ctl -s /run/x.sock status", b, err)
	}
}

// complete sources the completion in bash, sets COMP_WORDS to words (a
// bash array's body; the last word is the one completed) and returns
// COMPREPLY joined by spaces.
func complete(bash, words string) (string, error) {
	out, err := exec.Command(bash, "--norc", "-c", `source completion/udsvisor
COMP_WORDS=(`+words+`); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_udsvisor; echo "${COMPREPLY[*]}"`).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Against a real udsvisor up, the completion offers its services' names,
// read from the table ctl status prints.
func TestBashCompletionServices(t *testing.T) {
	bash := testutil.RequireCommand(t, "bash")
	dir := testutil.RunDir(t)
	bin, err := testutil.Build(dir, "github.com/udsvisor/udsvisor/cmd/udsvisor")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "ctl", "control.sock")
	cfg := filepath.Join(dir, "services.toml")
	conf := "[supervisor]\ncontrol_socket = \"" + sock + "\"\n"
	for _, name := range []string{"web", "worker", "api@2"} {
		conf += "\n[services.\"" + name + "\"]\ncommand = [\"/bin/sleep\", \"infinity\"]\nuser = \"nobody\"\n"
	}
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	up := testutil.StartUp(t, bin, cfg, testutil.UpOptions{})
	up.WaitUp(t)
	for _, tt := range []struct{ words, want string }{
		{bin + " ctl -s " + sock + " restart ''", "api@2 web worker"},
		{bin + " ctl -c " + cfg + " logs w", "web worker"},
		{bin + " ctl status -s " + sock + " a", "api@2"},
	} {
		if got, err := complete(bash, tt.words); err != nil || got != tt.want {
			t.Errorf("%s<TAB>: %q %v, want %q", tt.words, got, err, tt.want)
		}
	}
}
