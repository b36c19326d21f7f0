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
		words := strings.Replace(tt.words, "udsvisor", fake, 1)
		cmd := exec.Command(bash, "--norc", "-c", `source completion/udsvisor
COMP_WORDS=(`+words+`); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_udsvisor; echo "${COMPREPLY[*]}"`)
		out, err := cmd.CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != tt.want {
			t.Errorf("%s<TAB>: %q %v, want %q", tt.words, got, err, tt.want)
		}
	}
	// The last service completion above asked the socket given with -s.
	if b, err := os.ReadFile(args); err != nil || strings.TrimSpace(string(b)) != "ctl -s /run/x.sock status" {
		t.Errorf("the completion ran udsvisor %q %v, want ctl -s /run/x.sock status", b, err)
	}
}
