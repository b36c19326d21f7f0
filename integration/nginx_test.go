package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// nginxMain is the main config around the generated http{} file: workers
// as www-data (the sockets' group), every file nginx writes inside its
// prefix directory.
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
	include generated.conf;
}
`

// startNginx runs nginx on generated (the http{} context file that
// `udsvisor proxy nginx` printed, whose server listens on addr) after
// `nginx -t` passed on the very same files, waits until it listens and
// stops it after the test. It returns the path of nginx's error log.
func startNginx(t *testing.T, generated, addr string) string {
	t.Helper()
	bin := testutil.RequireCommand(t, "/usr/sbin/nginx")
	prefix := filepath.Join(testutil.RunDir(t), "nginx")
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(prefix, "generated.conf"), generated)
	writeFile(t, filepath.Join(prefix, "nginx.conf"), fmt.Sprintf(nginxMain, prefix))
	argv := []string{bin, "-p", prefix, "-c", filepath.Join(prefix, "nginx.conf"), "-g", "daemon off;"}
	configTest(t, append(argv, "-t")...)
	errorLog := filepath.Join(prefix, "error.log")
	d := startDaemon(t, unix.SIGTERM, errorLog, argv...)
	d.waitTCP(t, addr)
	return errorLog
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
