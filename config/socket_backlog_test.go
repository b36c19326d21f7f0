// SPDX-License-Identifier: Apache-2.0

package config

import (
	"strings"
	"testing"
)

// A small backlog is legal but warned about: it is what turns a restart
// into refused clients (fault "restart gap").
func TestSmallBacklogWarns(t *testing.T) {
	cfg, err := Parse("services.toml", []byte(`[services.api]
command = ["/bin/true"]
user = "daemon"
[[services.api.sockets]]
path = "/run/udsvisor-backlog-test/api.sock"
backlog = 16
`))
	if err != nil {
		t.Fatal(err)
	}
	want := "services.toml:6: services.api.sockets[0].backlog: only 16 connections can wait while the service restarts"
	if len(cfg.Warnings) == 0 || !strings.HasPrefix(cfg.Warnings[0].Error(), want) {
		t.Errorf("warnings %v, want one starting %q", cfg.Warnings, want)
	}
	if cfg.Services[0].Sockets[0].Backlog != 16 {
		t.Errorf("backlog %d, want 16", cfg.Services[0].Sockets[0].Backlog)
	}
}
