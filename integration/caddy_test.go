// SPDX-License-Identifier: Apache-2.0

//go:build linux

package integration

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// caddyMain is the Caddyfile that imports the generated one, as its
// header says, without the admin endpoint (it would take a port).
const caddyMain = `{
	admin off
}
import %s
`

// startCaddy runs Caddy on generated (what `udsvisor proxy caddy`
// printed, its site on addr), after `caddy validate` passed on the very
// same files, waits until it listens and stops it after the test. Caddy
// runs as Debian's caddy.service runs it: as the caddy user with its
// groups (Debian's package puts caddy in www-data).
func startCaddy(t *testing.T, generated, addr string) {
	t.Helper()
	bin := testutil.RequireCommand(t, "/usr/bin/caddy")
	setpriv := testutil.RequireCommand(t, "/usr/bin/setpriv")
	u, err := user.Lookup("caddy")
	if err != nil {
		t.Fatalf("the caddy package is installed but its user is not: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir := filepath.Join(testutil.RunDir(t), "caddy")
	// Caddy's state (HOME, XDG directories) must be its own.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	site := filepath.Join(dir, "udsvisor.caddy")
	main := filepath.Join(dir, "Caddyfile")
	writeFile(t, site, generated)
	writeFile(t, main, fmt.Sprintf(caddyMain, site))
	asCaddy := []string{"/usr/bin/env", "-i", "HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir,
		setpriv, "--reuid=" + u.Uid, "--regid=" + u.Gid, "--init-groups", "--", bin}
	configTest(t, append(asCaddy, "validate", "--config", main, "--adapter", "caddyfile")...)
	// Caddy logs to stderr, which startDaemon keeps: no log file.
	d := startDaemon(t, unix.SIGTERM, "", append(asCaddy, "run", "--config", main, "--adapter", "caddyfile")...)
	d.waitTCP(t, addr)
}
