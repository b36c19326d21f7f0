// SPDX-License-Identifier: Apache-2.0

package proxyconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadme: the README's "Behind nginx" and "Behind Apache" sections
// show the actual output for services.toml.example.
func TestReadme(t *testing.T) {
	readme, example := readmeAndExample(t)
	// The demo command resolves to wherever udsvisor is installed; it
	// plays no part in the proxy config.
	src := strings.Replace(string(example), `command = ["udsvisor", "demo"]`, `command = ["true"]`, 1)
	cfg := parse(t, src)
	cfg.File = "services.toml.example"
	for _, tt := range []struct{ kind, fence string }{{"nginx", "```nginx\n"}, {"apache", "```apache\n"}} {
		_, block, ok := strings.Cut(string(readme), tt.fence)
		if !ok {
			t.Fatalf("README has no %q block", strings.TrimSpace(tt.fence))
		}
		block, _, _ = strings.Cut(block, "```\n")
		if got := generate(t, tt.kind, cfg, Options{}); got != block {
			t.Errorf("README's %s block is stale; the output is:\n%s", tt.kind, got)
		}
	}
}

// The README's "The permission check" shows the warnings of `udsvisor
// proxy nginx` for the example with its socket group changed to nogroup,
// line numbers and all. The example's directory is moved under a fresh
// directory for the check, so that a /run/udsvisor-demo left on disk (or
// made by a test running beside this one) cannot change the result.
func TestReadmePermissionWarnings(t *testing.T) {
	readme, example := readmeAndExample(t)
	const (
		fence   = "With the demo's socket group changed to\n`nogroup`:\n\n```\n"
		demoDir = "/run/udsvisor-demo"
	)
	_, block, ok := strings.Cut(string(readme), fence)
	if !ok {
		t.Fatalf("README has no block after %q", fence)
	}
	block, _, _ = strings.Cut(block, "```\n")

	top := t.TempDir()
	for _, d := range []string{top, filepath.Dir(top)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src := strings.Replace(string(example), `command = ["udsvisor", "demo"]`, `command = ["true"]`, 1)
	src = strings.Replace(src, `group = "www-data"`, `group = "nogroup"`, 1)
	src = strings.ReplaceAll(src, demoDir, filepath.Join(top, "udsvisor-demo"))
	cfg := parse(t, src)
	cfg.File = "services.toml.example"
	warnings, err := Check(cfg, "nginx", "www-data")
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for _, w := range warnings {
		got.WriteString("warning: " + strings.ReplaceAll(w, top, "/run") + "\n")
	}
	if got.String() != block {
		t.Errorf("README's permission warnings are stale; the output is:\n%s", got.String())
	}
}

// readmeAndExample reads the README and the example config.
func readmeAndExample(t *testing.T) (readme, example []byte) {
	t.Helper()
	var err error
	if readme, err = os.ReadFile("../README.md"); err != nil {
		t.Fatal(err)
	}
	if example, err = os.ReadFile("../services.toml.example"); err != nil {
		t.Fatal(err)
	}
	return readme, example
}
