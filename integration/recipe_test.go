// SPDX-License-Identifier: Apache-2.0

//go:build linux

package integration

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// proveRecipe checks what every row of the README's porting table
// promises, with nginx in front of the service's socket (nginxConf,
// listening on addr): a request through nginx is served; a kill -9 of
// the service's process under load through nginx refuses no connection
// (only a request the process was answering when it died may fail) and
// keeps the socket's inode; a normal stop keeps the socket file. path is
// what the load requests; up is how long the app may take to serve
// again after the kill (a JVM takes seconds).
func proveRecipe(t *testing.T, s *stack, service, sock, nginxConf, addr, path string, up time.Duration) {
	t.Helper()
	errorLog := startNginx(t, nginxConf, addr)
	url := "http://" + addr + path
	client := &http.Client{Timeout: 30 * time.Second}
	if o, detail := get(client, url); o != ok200 {
		t.Fatalf("%s through nginx: %s", service, detail)
	}
	before := testutil.Birth(t, sock)
	svc, err := s.service(service)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan tally, 1)
	go func() { done <- load(url, recipeWorkers, time.Now().Add(up+time.Second)) }()
	time.Sleep(300 * time.Millisecond)
	if err := unix.Kill(svc.Pid, unix.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", svc.Pid, err)
	}
	tl := <-done
	// Each worker has at most one request in flight when the process
	// dies; nginx retries those it can, and every later one must wait
	// for the new process and succeed.
	if tl.failed() > recipeWorkers || tl.total() == 0 {
		t.Errorf("%s: %d of %d requests through nginx failed around the kill -9 (%v): %q", service, tl.failed(), tl.total(), tl, tl.examples)
	}
	for _, e := range tl.examples {
		if strings.Contains(e, "refused") {
			t.Errorf("%s: a connection was refused: %s", service, e)
		}
	}
	for cause, n := range upstreamErrors(t, errorLog) {
		if strings.Contains(cause, "refused") {
			t.Errorf("%s: nginx saw %d refused connections (%s)", service, n, cause)
		}
	}
	if after, err := s.service(service); err != nil || after.Pid == svc.Pid || after.Pid == 0 {
		t.Errorf("%s after the kill: pid %d (%v), want a new process", service, after.Pid, err)
	}
	if testutil.Birth(t, sock) != before {
		t.Errorf("%s: the kill -9 re-created the socket", service)
	}
	if out, err := s.ctl("stop", service); err != nil {
		t.Fatalf("ctl stop %s: %v\n%s", service, err, out)
	}
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket || testutil.Birth(t, sock) != before {
		t.Errorf("%s stopped: its socket file is %v (%v), want the same socket", service, fi, err)
	}
}

// recipeWorkers is how many clients load the app in proveRecipe.
const recipeWorkers = 4

// httpNginx is nginx proxying everything to the Unix socket sock.
func httpNginx(addr, sock string) string { return handNginx(addr, []route{{"/", sock}}) }

// fastcgiNginx is nginx passing every request to the FastCGI server on
// sock, as the PHP script.
func fastcgiNginx(addr, sock, script string) string {
	return fmt.Sprintf(`upstream fpm {
	server unix:%[2]s max_fails=0;
	server unix:%[2]s max_fails=0;
	server unix:%[2]s max_fails=0;
}
server {
	listen %[1]s;
	server_name _;
	location / {
		include /etc/nginx/fastcgi_params;
		fastcgi_param SCRIPT_FILENAME %[3]s;
		fastcgi_pass fpm;
		fastcgi_next_upstream error timeout;
	}
}
`, addr, sock, script)
}
