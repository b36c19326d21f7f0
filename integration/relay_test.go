// SPDX-License-Identifier: Apache-2.0

//go:build linux

package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/internal/proctree"
	"github.com/udsvisor/udsvisor/internal/testutil"
)

// A TCP-only app (Python's http.server, which can only bind a TCP port)
// runs behind a relay: it serves through the Unix socket, as the
// service's user, in a network namespace of its own whose port nothing
// on the host reaches; requests made while it restarts wait and are
// served; the socket stays the same.
func TestRelayTCPOnlyApp(t *testing.T) {
	py := testutil.RequireCommand(t, "/usr/bin/python3")
	u := testutil.EnsureUser(t, "udsv-app")
	_, port, _ := net.SplitHostPort(freePort(t))
	s := startStack(t, fmt.Sprintf(`
[services.legacy]
command = [%q, "-m", "http.server", "--bind", "127.0.0.1", "--directory", "/usr/share/common-licenses", %q]
user = "udsv-app"
[[services.legacy.sockets]]
path = "$DIR/legacy/http.sock"
group = "www-data"
mode = "0660"
[services.legacy.relay]
port = %s
`, py, port, port))
	sock := s.dir + "/legacy/http.sock"
	want, err := os.ReadFile("/usr/share/common-licenses/Apache-2.0")
	if err != nil {
		t.Fatal(err)
	}
	client := unixClient(sock)
	fetch := func() error {
		resp, err := client.Get("http://localhost/Apache-2.0")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK || string(b) != string(want) {
			return fmt.Errorf("%s, %d bytes, %v", resp.Status, len(b), err)
		}
		return nil
	}
	if err := fetch(); err != nil {
		t.Fatalf("GET through the relay: %v", err)
	}

	// The relay and the app: the service's user, in a namespace that is
	// not the host's.
	svc, err := s.service("legacy")
	if err != nil {
		t.Fatal(err)
	}
	kids := proctree.Children(svc.Pid)
	if len(kids) != 1 {
		t.Fatalf("the relay %d has children %v, want the app alone", svc.Pid, kids)
	}
	host, _ := os.Readlink("/proc/self/ns/net")
	for _, pid := range []int{svc.Pid, kids[0]} {
		if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); ns == host || ns == "" {
			t.Errorf("process %d is in network namespace %q, the host's is %q", pid, ns, host)
		}
		ps, err := testutil.ProcStatus(pid)
		if err != nil {
			t.Fatal(err)
		}
		// Uid: real, effective, saved, filesystem.
		if uid, _, _ := strings.Cut(ps["Uid"], "\t"); uid != strconv.Itoa(int(u.UID)) {
			t.Errorf("process %d runs as uid %s, want %d", pid, uid, u.UID)
		}
	}
	// The app's port is not the host's.
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
		c.Close()
		t.Errorf("the app's port 127.0.0.1:%s is reachable from the host", port)
	}
	if strings.Contains(s.up.Log(), "sockets of its own") {
		t.Error("the app's own port in its namespace was reported as an exposure")
	}

	// ctl restart returns once the new relay runs, before the app
	// listens: requests made now wait in the socket's backlog until the
	// relay, once its app answers, accepts them.
	before := testutil.Birth(t, sock)
	if out, err := s.ctl("restart", "legacy"); err != nil {
		t.Fatalf("ctl restart: %v\n%s", err, out)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- fetch()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("GET right after the restart: %v", err)
		}
	}
	if after, err := s.service("legacy"); err != nil || after.Pid == svc.Pid {
		t.Errorf("after the restart: pid %d (%v), want a new one", after.Pid, err)
	}
	if testutil.Birth(t, sock) != before {
		t.Error("the restart re-created the socket")
	}
	addr := freePort(t)
	proveRecipe(t, s, "legacy", sock, httpNginx(addr, sock), addr, "/Apache-2.0", 3*time.Second)
}

// proxy_protocol = "v1" sends the app a PROXY line first: UNKNOWN for a
// client on the Unix socket, the client's and the socket's address and
// ports for one on a TCP socket.
func TestRelayProxyProtocol(t *testing.T) {
	py := testutil.RequireCommand(t, "/usr/bin/python3")
	testutil.EnsureUser(t, "udsv-app")
	_, port, _ := net.SplitHostPort(freePort(t))
	tcp := freePort(t)
	s := startStack(t, fmt.Sprintf(`
[services.echo]
command = [%q, "$APPDIR/proxy_echo.py", %q]
user = "udsv-app"
[[services.echo.sockets]]
path = "$DIR/echo/echo.sock"
[[services.echo.sockets]]
name = "tcp"
listen = %q
[services.echo.relay]
port = %s
proxy_protocol = "v1"
`, py, port, tcp, port))
	ask := func(network, addr string) (header, local, remote string) {
		t.Helper()
		c, err := net.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprint(c, "GET / HTTP/1.0\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("through %s: %v", addr, err)
		}
		b, _ := io.ReadAll(resp.Body)
		return string(b), c.LocalAddr().String(), c.RemoteAddr().String()
	}
	if h, _, _ := ask("unix", s.dir+"/echo/echo.sock"); h != "PROXY UNKNOWN" {
		t.Errorf("through the Unix socket the app got %q, want PROXY UNKNOWN", h)
	}
	h, local, remote := ask("tcp", tcp)
	lh, lp, _ := net.SplitHostPort(local)
	rh, rp, _ := net.SplitHostPort(remote)
	if want := fmt.Sprintf("PROXY TCP4 %s %s %s %s", lh, rh, lp, rp); h != want {
		t.Errorf("through the TCP socket the app got %q, want %q", h, want)
	}
}
