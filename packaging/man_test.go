// SPDX-License-Identifier: Apache-2.0

//go:build linux

package packaging

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// Both man pages render with groff's man macros, every warning enabled,
// without a word on stderr, and man-db's man -l renders them too.
func TestManPagesRender(t *testing.T) {
	groff := testutil.RequireCommand(t, "groff")
	man := testutil.RequireCommand(t, "man")
	for _, page := range []string{"man/udsvisor.8", "man/services.toml.5"} {
		cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", page)
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
		if b, err := cmd.CombinedOutput(); err != nil || len(b) > 0 {
			t.Errorf("groff -man -ww %s: %v\n%s", page, err, b)
		}
		cmd = exec.Command(man, "--warnings", "-l", page)
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "MANPAGER=cat", "MANWIDTH=80")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if out, err := cmd.Output(); err != nil || stderr.Len() > 0 || len(out) == 0 {
			t.Errorf("man --warnings -l %s: %v\n%s", page, err, stderr.String())
		}
	}
}

// udsvisor(8) describes every subcommand and ctl action of the usage in
// cmd/udsvisor, every flag the subcommands define, and each exit status.
func TestManPageCommands(t *testing.T) {
	page, err := os.ReadFile("man/udsvisor.8")
	if err != nil {
		t.Fatal(err)
	}
	mainGo, err := os.ReadFile("../cmd/udsvisor/main.go")
	if err != nil {
		t.Fatal(err)
	}
	usage := regexp.MustCompile("(?s)const usage = `(.*?)`").FindSubmatch(mainGo)
	if usage == nil {
		t.Fatal("main.go has no usage constant")
	}
	commands := regexp.MustCompile(`(?m)^  ([a-z]+) `).FindAllSubmatch(usage[1], -1)
	actions := regexp.MustCompile(`(?m)^  ctl .* ((?:[a-z]+\|)+[a-z]+) `).FindSubmatch(usage[1])
	if len(commands) < 7 || actions == nil {
		t.Fatalf("cannot read the commands and ctl actions of main.go's usage:\n%s", usage[1])
	}
	// Each one is the head of a tagged paragraph: .TP then .B name, or
	// .BR/.BI name followed by its arguments.
	heads := map[string]bool{}
	lines := strings.Split(string(page), "\n")
	for i := 1; i < len(lines); i++ {
		if lines[i-1] == ".TP" {
			if f := strings.Fields(lines[i]); len(f) > 1 && strings.HasPrefix(f[0], ".B") {
				heads[strings.Trim(f[1], `"`)] = true
			}
		}
	}
	for _, m := range commands {
		if !heads[string(m[1])] {
			t.Errorf("udsvisor.8 has no paragraph for the command %s", m[1])
		}
	}
	for _, a := range strings.Split(string(actions[1]), "|") {
		if !heads[a] {
			t.Errorf("udsvisor.8 has no paragraph for ctl %s", a)
		}
	}
	for _, code := range []string{"0", "1", "2", "3", "4"} {
		if !heads[code] {
			t.Errorf("udsvisor.8 has no paragraph for exit status %s", code)
		}
	}
	for _, sig := range []string{"SIGTERM", "SIGINT", "SIGHUP", "SIGUSR2"} {
		if !strings.Contains(string(page), sig) {
			t.Errorf("udsvisor.8 does not mention %s", sig)
		}
	}

	// Flags: each fs.String("name", …), fs.Bool(…) and so on of the
	// subcommands, written \-name or \-\-name in the page.
	files, err := os.ReadDir("../cmd/udsvisor")
	if err != nil {
		t.Fatal(err)
	}
	flagDef := regexp.MustCompile(`fs\.(?:String|Bool|Int|Duration)\("([a-z-]+)"`)
	n := 0
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".go") || strings.HasSuffix(f.Name(), "_test.go") {
			continue
		}
		src, err := os.ReadFile("../cmd/udsvisor/" + f.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range flagDef.FindAllSubmatch(src, -1) {
			n++
			name := strings.ReplaceAll(string(m[1]), "-", `\-`)
			if !strings.Contains(string(page), `\-`+name) {
				t.Errorf("udsvisor.8 does not mention the flag -%s of %s", m[1], f.Name())
			}
		}
	}
	if n < 10 {
		t.Errorf("found only %d flag definitions in cmd/udsvisor; the pattern is stale", n)
	}
}
