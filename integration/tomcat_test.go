// SPDX-License-Identifier: Apache-2.0

//go:build linux

package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// tomcatServerXML makes Tomcat 10.1 serve the channel the JVM inherited
// on fd 0 (System.inheritedChannel). useInheritedChannel alone accepts
// and then resets every connection (it asks the channel for a TCP
// socket); a unixDomainSocketPath makes Tomcat treat it as a Unix one.
// The path must not be the real socket's: Tomcat deletes that file when
// it stops. Nothing is bound there.
const tomcatServerXML = `<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector protocol="org.apache.coyote.http11.Http11NioProtocol"
               useInheritedChannel="true"
               unixDomainSocketPath="/nonexistent/udsvisor-inherited.sock" />
    <Engine name="Catalina" defaultHost="localhost">
      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false" />
    </Engine>
  </Service>
</Server>
`

// The article's Tomcat, which "does not support Unix domain sockets",
// serves a udsvisor-owned Unix socket it inherits on stdin (stdin =
// true): a request is answered, a restart keeps the socket (a request
// sent while the new JVM starts waits in the backlog and is served) and
// a stop leaves it in place.
func TestTomcatOnStdin(t *testing.T) {
	catalina := testutil.RequireCommand(t, "/usr/share/tomcat10/bin/catalina.sh")
	u := testutil.EnsureUser(t, "udsv-tomcat")
	base := tomcatBase(t, u)
	s := startStack(t, fmt.Sprintf(`
[services.tomcat]
command = [%q, "run"]
user = "udsv-tomcat"
environment = { CATALINA_HOME = "/usr/share/tomcat10", CATALINA_BASE = %q, CATALINA_TMPDIR = %q }
stop_timeout = "30s"
[[services.tomcat.sockets]]
name = "http"
path = "$DIR/tomcat/tomcat.sock"
group = "www-data"
mode = "0660"
stdin = true
`, catalina, base, filepath.Join(base, "temp")))
	sock := filepath.Join(s.dir, "tomcat", "tomcat.sock")
	if got := getBody(t, sock); got != "hello from tomcat\n" {
		t.Fatalf("Tomcat answered %q", got)
	}
	before := testutil.Birth(t, sock)
	svc, err := s.service("tomcat")
	if err != nil {
		t.Fatal(err)
	}
	// ctl restart returns once the new JVM runs, long before it
	// serves: the request waits in the backlog for it. (One sent while
	// the old JVM stops may be reset: Tomcat's acceptor cannot be woken
	// on an inherited channel, takes one more connection and drops it.)
	if out, err := s.ctl("restart", "tomcat"); err != nil {
		t.Fatalf("ctl restart: %v\n%s", err, out)
	}
	if got := getBody(t, sock); got != "hello from tomcat\n" {
		t.Errorf("right after the restart Tomcat answered %q", got)
	}
	after, err := s.service("tomcat")
	if err != nil || after.Pid == svc.Pid {
		t.Errorf("after the restart: pid %d (before %d), %v", after.Pid, svc.Pid, err)
	}
	if testutil.Birth(t, sock) != before {
		t.Error("the restart re-created the socket")
	}
	addr := freePort(t)
	proveRecipe(t, s, "tomcat", sock, httpNginx(addr, sock), addr, "/", 20*time.Second)
}

// tomcatBase makes a CATALINA_BASE with the server.xml above, Debian's
// other conf files (readable by u: Debian's are root:tomcat 0640) and a
// ROOT web application with one JSP.
func tomcatBase(t *testing.T, u testutil.User) string {
	t.Helper()
	base := filepath.Join(testutil.RunDir(t), "catalina")
	for _, d := range []string{"conf/Catalina/localhost", "logs", "temp", "work", "webapps/ROOT"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"web.xml", "logging.properties", "catalina.properties", "context.xml"} {
		b, err := os.ReadFile(filepath.Join("/etc/tomcat10", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(base, "conf", f), string(b))
	}
	writeFile(t, filepath.Join(base, "conf", "server.xml"), tomcatServerXML)
	// A JSP: Jasper compiles it into the service user's work directory,
	// and the expression shows it ran.
	writeFile(t, filepath.Join(base, "webapps", "ROOT", "index.jsp"),
		`<%@ page contentType="text/plain" %>hello from <%= "tom" + "cat" %>`+"\n")
	for _, d := range []string{"conf/Catalina", "conf/Catalina/localhost", "logs", "temp", "work"} {
		if err := os.Chown(filepath.Join(base, d), int(u.UID), int(u.GID)); err != nil {
			t.Fatal(err)
		}
	}
	return base
}

// getBody GETs / through the Unix socket sock and returns the body of a
// 200 answer ("" and a test error otherwise).
func getBody(t *testing.T, sock string) string {
	client := unixClient(sock)
	resp, err := client.Get("http://localhost/")
	if err != nil {
		t.Errorf("GET through %s: %v", sock, err)
		return ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET through %s: %s %v: %s", sock, resp.Status, err, strings.TrimSpace(string(b)))
		return ""
	}
	return string(b)
}
