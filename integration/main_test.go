// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package integration runs udsvisor end to end with the real servers of
// Debian's packages: nginx and Apache in front (on the configs that
// `udsvisor proxy` generates), uvicorn, gunicorn and a Go app using
// go-systemd activation behind, each on its own config under a temporary
// directory and on loopback ports only.
package integration

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// bins are the programs TestMain builds and the app files it copies, in
// one 0755 directory that the service users can read and exec from (go
// test keeps its own files under 0700 directories).
type bins struct {
	udsvisor string // the real udsvisor binary, launch helper included
	testApp  string // integration/testapp
	appDir   string // testdata/*.py, world-readable
}

// built is set once by TestMain before any test runs and only read after.
var built bins

func TestMain(m *testing.M) {
	os.Exit(testutil.RunBuilt(m, []string{
		"github.com/udsvisor/udsvisor/cmd/udsvisor",
		"github.com/udsvisor/udsvisor/integration/testapp",
	}, func(dir string, paths []string) error {
		built.udsvisor, built.testApp = paths[0], paths[1]
		built.appDir = filepath.Join(dir, "apps")
		return copyApps(built.appDir)
	}))
}

// copyApps copies testdata's Python and Node apps into a new world-readable
// directory appDir.
func copyApps(appDir string) error {
	if err := os.Mkdir(appDir, 0o755); err != nil {
		return err
	}
	// The caller's umask may be 0077.
	if err := os.Chmod(appDir, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"asgi_app.py", "wsgi_app.py", "node_app.js", "puma_app.ru", "proxy_echo.py"} {
		if err := copyFile(filepath.Join("testdata", name), filepath.Join(appDir, name)); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("copy %s: %w", from, err)
	}
	if err := dst.Chmod(0o644); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
