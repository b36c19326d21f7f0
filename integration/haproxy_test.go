// SPDX-License-Identifier: Apache-2.0

//go:build linux

package integration

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// haproxyMain is the global and defaults sections that the generated
// file is appended to, shaped like Debian's /etc/haproxy/haproxy.cfg:
// HAProxy drops to haproxy:haproxy, chrooted when %[1]s says so, and
// logs to stderr instead of syslog.
const haproxyMain = `global
	%[1]s
	user haproxy
	group haproxy
	log stderr format raw local0

defaults
	log global
	mode http
	option httplog
	timeout connect 5s
	timeout client 50s
	timeout server 50s
`

// startHAProxy runs HAProxy on generated (what `udsvisor proxy haproxy`
// printed, its frontend on addr) appended to haproxyMain, chrooted to
// chroot unless it is "", after `haproxy -c` passed on the very same
// files; it waits until HAProxy listens and stops it after the test.
func startHAProxy(t *testing.T, generated, addr, chroot string) {
	t.Helper()
	bin := testutil.RequireCommand(t, "/usr/sbin/haproxy")
	dir := testutil.RunDir(t)
	chrootLine := "# no chroot"
	if chroot != "" {
		chrootLine = "chroot " + chroot
	}
	main := filepath.Join(dir, "haproxy.cfg")
	site := filepath.Join(dir, "udsvisor.cfg")
	writeFile(t, main, fmt.Sprintf(haproxyMain, chrootLine))
	writeFile(t, site, generated)
	// Two -f files are read as one, in order: the generated sections
	// come after global and defaults, as its header asks.
	argv := []string{bin, "-f", main, "-f", site}
	configTest(t, append(argv, "-c")...)
	// -db: in the foreground, not as a daemon; HAProxy logs to stderr,
	// which startDaemon keeps.
	d := startDaemon(t, unix.SIGTERM, "", append(argv, "-db")...)
	d.waitTCP(t, addr)
}

// Issue 10, item 10: HAProxy connects to a unix@ server from inside its
// chroot (Debian's stock haproxy.cfg has "chroot /var/lib/haproxy"), so
// the socket's real path is not found there and every request gets 503;
// with the socket under the chroot and --chroot, the path is written as
// HAProxy sees it and the request is served. The stack's directory plays
// /var/lib/haproxy.
func TestHAProxyChroot(t *testing.T) {
	s := appStack(t, "haproxy")

	t.Run("stock chroot", func(t *testing.T) {
		addr := freePort(t)
		generated := generateProxy(t, "haproxy", s.cfg, addr)
		if !strings.Contains(generated, "pass --chroot /var/lib/haproxy") {
			t.Errorf("the output does not warn about Debian's chroot:\n%s", generated)
		}
		startHAProxy(t, generated, addr, s.dir)
		if code := statusFor(t, "http://"+addr+"/", addr); code != http.StatusServiceUnavailable {
			t.Errorf("GET / through a chrooted HAProxy on the path outside: %d, want 503", code)
		}
	})

	t.Run("--chroot", func(t *testing.T) {
		addr := freePort(t)
		generated := generateProxy(t, "haproxy", s.cfg, addr, "--chroot", s.dir)
		if !strings.Contains(generated, "server s1 unix@/app/app.sock\n") {
			t.Errorf("the socket is not written relative to the chroot:\n%s", generated)
		}
		startHAProxy(t, generated, addr, s.dir)
		a, err := tryFetch("http://" + addr + "/x")
		if err != nil {
			t.Fatal(err)
		}
		if a.Socket != "http" {
			t.Errorf("served on socket %q", a.Socket)
		}
	})
}
