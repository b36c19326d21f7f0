// SPDX-License-Identifier: Apache-2.0

package proxyconf

import (
	"os"
	"strings"
	"testing"
)

// TestReadme: the README's "Behind nginx" and "Behind Apache" sections
// show the actual output for services.toml.example.
func TestReadme(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../services.toml.example")
	if err != nil {
		t.Fatal(err)
	}
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
