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
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// nginxMain is the main config around the generated http{} file: workers
// as www-data (the sockets' group), every file nginx writes inside its
// prefix directory, a test's own http{} directives (%[2]s), and the sites
// of sites/, read before the generated file as Debian's sites-enabled/
// and conf.d/ are read together.
const nginxMain = `user www-data;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	%[2]s
	include sites/*.conf;
	include generated.conf;
}
`

// nginxExtra is what a test puts around the generated file.
type nginxExtra struct {
	http  string            // directives for the http{} context
	sites map[string]string // name → a server{} file read before the generated one
}

// startNginx runs nginx on generated (the http{} context file that
// `udsvisor proxy nginx` printed, whose server listens on addr) after
// `nginx -t` passed on the very same files, waits until it listens and
// stops it after the test. It returns the path of nginx's error log.
func startNginx(t *testing.T, generated, addr string) string {
	t.Helper()
	return startNginxWith(t, generated, addr, nginxExtra{})
}

// startNginxWith is startNginx with a test's additions around the
// generated file.
func startNginxWith(t *testing.T, generated, addr string, x nginxExtra) string {
	t.Helper()
	prefix, argv := writeNginx(t, generated, x)
	configTest(t, append(argv, "-t")...)
	errorLog := filepath.Join(prefix, "error.log")
	d := startDaemon(t, unix.SIGTERM, errorLog, argv...)
	d.waitTCP(t, addr)
	return errorLog
}

// writeNginx writes nginx's files into a fresh prefix directory and
// returns it and the command line that runs nginx on them.
func writeNginx(t *testing.T, generated string, x nginxExtra) (string, []string) {
	t.Helper()
	bin := testutil.RequireCommand(t, "/usr/sbin/nginx")
	prefix := filepath.Join(testutil.RunDir(t), "nginx")
	for _, d := range []string{"tmp", "sites"} {
		if err := os.MkdirAll(filepath.Join(prefix, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range x.sites {
		writeFile(t, filepath.Join(prefix, "sites", name+".conf"), text)
	}
	writeFile(t, filepath.Join(prefix, "generated.conf"), generated)
	writeFile(t, filepath.Join(prefix, "nginx.conf"), fmt.Sprintf(nginxMain, prefix, x.http))
	return prefix, []string{bin, "-p", prefix, "-c", filepath.Join(prefix, "nginx.conf"), "-g", "daemon off;"}
}

// upstreamErrors counts the upstream errors in an nginx error log by
// cause, retried ones included. SECURITY-NOTES 0.15: a refused connect
// or a missing socket is the supervisor's fault, a reset of a request
// in flight (or of a kept-alive connection to a killed process) is the
// proxy config's.
func upstreamErrors(t *testing.T, errorLog string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(errorLog)
	if err != nil {
		t.Fatal(err)
	}
	causes := []struct{ needle, name string }{
		{"(111: Connection refused)", "refused"},
		{"(2: No such file or directory)", "socket missing"},
		{"(13: Permission denied)", "permission denied"},
		{"(11: Resource temporarily unavailable)", "backlog full"},
		{"(104: Connection reset by peer)", "reset in flight"},
		{"(32: Broken pipe)", "broken pipe"},
		{"prematurely closed", "closed in flight"},
		{"no live upstreams", "every retry used"},
	}
	counts := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "upstream") {
			continue
		}
		name := "other"
		for _, c := range causes {
			if strings.Contains(line, c.needle) {
				name = c.name
				break
			}
		}
		counts[name]++
	}
	return counts
}

// Issue 10, item 9: without --server-name the routes without a host are
// nginx's default_server, so they answer hosts that no server names even
// when another site on the address is read first (which nginx would make
// the default otherwise); a second default_server on the address, as
// Debian's default site has, is refused by nginx -t rather than losing
// quietly; with --server-name the routes answer that name only.
func TestNginxDefaultServer(t *testing.T) {
	s := appStack(t, "www-data")
	site := func(addr, flags string) map[string]string {
		return map[string]string{"other": "server {\n\tlisten " + addr + flags + ";\n\tserver_name other.example;\n\treturn 418;\n}\n"}
	}

	t.Run("catch-all", func(t *testing.T) {
		addr := freePort(t)
		startNginxWith(t, generateProxy(t, "nginx", s.cfg, addr), addr, nginxExtra{sites: site(addr, "")})
		if code := statusFor(t, "http://"+addr+"/", "unknown.example"); code != 200 {
			t.Errorf("Host unknown.example: %d, want 200 from the catch-all", code)
		}
		if code := statusFor(t, "http://"+addr+"/", "other.example"); code != 418 {
			t.Errorf("Host other.example: %d, want 418 from its own site", code)
		}
		// A request without Host (HTTP/1.0) still reaches the app with
		// one: $http_host is empty, so the map falls back to $host.
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprint(c, "GET /headers HTTP/1.0\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("HTTP/1.0 without Host: %s\n%s", resp.Status, body)
		}
	})

	t.Run("Debian's default_server", func(t *testing.T) {
		addr := freePort(t)
		_, argv := writeNginx(t, generateProxy(t, "nginx", s.cfg, addr), nginxExtra{sites: site(addr, " default_server")})
		out, err := exec.Command(argv[0], append(argv[1:], "-t")...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "a duplicate default server for "+addr) {
			t.Errorf("nginx -t with two default servers: %v\n%s\nwant the duplicate refused", err, out)
		}
	})

	t.Run("--server-name", func(t *testing.T) {
		addr := freePort(t)
		startNginxWith(t, generateProxy(t, "nginx", s.cfg, addr, "--server-name", "app.example"), addr, nginxExtra{sites: site(addr, "")})
		if code := statusFor(t, "http://"+addr+"/", "app.example"); code != 200 {
			t.Errorf("Host app.example: %d, want 200", code)
		}
		if code := statusFor(t, "http://"+addr+"/", "unknown.example"); code != 418 {
			t.Errorf("Host unknown.example: %d, want 418 from the site nginx takes as default", code)
		}
	})
}

// Issue 10, item 9: a request to a live process that does not answer is
// not sent again: nginx gives up after one proxy_read_timeout with 504,
// where `proxy_next_upstream error timeout` sent it to each of the ten
// copies of the socket in turn (ten times the timeout, ten runs of the
// request).
func TestNginxHungBackendNotRetried(t *testing.T) {
	s := appStack(t, "www-data")
	addr := freePort(t)
	errorLog := startNginxWith(t, generateProxy(t, "nginx", s.cfg, addr), addr, nginxExtra{http: "proxy_read_timeout 1s;"})
	start := time.Now()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + addr + "/slow?d=20s")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusGatewayTimeout || took > 5*time.Second {
		t.Errorf("GET /slow: %s after %v, want 504 after one 1s timeout", resp.Status, took.Round(time.Millisecond))
	}
	b, err := os.ReadFile(errorLog)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "upstream timed out"); n != 1 {
		t.Errorf("%d upstream timeouts in nginx's error log, want 1 (one try):\n%s", n, b)
	}
}
