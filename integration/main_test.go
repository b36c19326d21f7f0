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
	dir, err := os.MkdirTemp("", "udsvisor-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	b, err := build(dir)
	if err != nil {
		os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	built = b
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func build(dir string) (bins, error) {
	var b bins
	var err error
	if b.udsvisor, err = testutil.Build(dir, "github.com/udsvisor/udsvisor/cmd/udsvisor"); err != nil {
		return b, err
	}
	if b.testApp, err = testutil.Build(dir, "github.com/udsvisor/udsvisor/integration/testapp"); err != nil {
		return b, err
	}
	b.appDir = filepath.Join(dir, "apps")
	if err := os.Mkdir(b.appDir, 0o755); err != nil {
		return b, err
	}
	// The caller's umask may be 0077.
	if err := os.Chmod(b.appDir, 0o755); err != nil {
		return b, err
	}
	for _, name := range []string{"asgi_app.py", "wsgi_app.py"} {
		if err := copyFile(filepath.Join("testdata", name), filepath.Join(b.appDir, name)); err != nil {
			return b, err
		}
	}
	return b, nil
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
