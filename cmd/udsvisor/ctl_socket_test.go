// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/internal/controltest"
	"github.com/udsvisor/udsvisor/internal/fakesup"
	"github.com/udsvisor/udsvisor/internal/testutil"
)

// writeConfig writes a config naming sock as the control socket, with
// the strict mode config.Load demands.
func writeConfig(t *testing.T, sock string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "services.toml")
	text := "[supervisor]\ncontrol_socket = \"" + sock + "\"\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCtlSocketPath(t *testing.T) {
	good := writeConfig(t, "/run/udsv-ctl-test/control.sock")
	broken := writeConfig(t, "relative.sock")
	missing := filepath.Join(t.TempDir(), "none.toml")

	for _, tt := range []struct {
		name          string
		defaultConfig string
		args          []string
		want          string
		wantErr       bool
	}{
		{"built-in default", missing, nil, config.DefaultControlSocket, false},
		{"default config", good, nil, "/run/udsv-ctl-test/control.sock", false},
		// An operator who cannot read or fix the default config still
		// reaches the usual socket.
		{"broken default config", broken, nil, config.DefaultControlSocket, false},
		{"-c", missing, []string{"-c", good}, "/run/udsv-ctl-test/control.sock", false},
		{"--config", missing, []string{"--config", good}, "/run/udsv-ctl-test/control.sock", false},
		{"broken -c", missing, []string{"-c", broken}, "", true},
		{"missing -c", good, []string{"-c", missing}, "", true},
		{"-s beats -c", good, []string{"-c", broken, "-s", "/run/x.sock"}, "/run/x.sock", false},
		{"--socket", good, []string{"--socket", "/run/x.sock"}, "/run/x.sock", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &ctl{defaultConfig: tt.defaultConfig, stdout: io.Discard, stderr: io.Discard}
			c.config.v = c.defaultConfig
			fs := c.flags("status", "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			got, err := c.socketPath()
			if tt.wantErr {
				var ce config.Errors
				if !errors.As(err, &ce) {
					t.Errorf("got %q, %v; want config.Errors", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestCtlEmptySocketFlag(t *testing.T) {
	_, err := ctlRun(t, "", "status")
	var ue usageError
	if !errors.As(err, &ue) {
		t.Errorf("got %T %v, want usageError", err, err)
	}
}

// ctl -c FILE reaches the server at FILE's control_socket.
func TestCtlConfigNamesTheSocket(t *testing.T) {
	testutil.RequireRoot(t)
	// Under /run, since config.Load refuses a control socket in a
	// world-writable directory such as /tmp.
	sock := filepath.Join(testutil.RunDir(t), "control.sock")
	f := fakesup.New(ctlServices()...)
	controltest.Serve(t, sock, f)

	var out bytes.Buffer
	c := &ctl{defaultConfig: filepath.Join(t.TempDir(), "none.toml"), stdout: &out, stderr: io.Discard}
	if err := c.run(context.Background(), []string{"-c", writeConfig(t, sock), "status", "web"}); err != nil {
		t.Fatal(err)
	}
	if calls := f.Calls(); !slices.Equal(calls, []string{"Status web"}) {
		t.Errorf("the supervisor saw %q", calls)
	}
}
