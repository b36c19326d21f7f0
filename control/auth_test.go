// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/udsvisor/udsvisor/internal/peercred"
	"github.com/udsvisor/udsvisor/internal/testutil"
)

// testUsers are the callers of the permission tests.
type testUsers struct {
	ctlGID, roGID int
	outsider      testutil.User // in neither group
	operator      testutil.User // udsv-ctl as a supplementary group
	reader        testutil.User // udsv-ro as a supplementary group
}

func ensureUsers(t *testing.T) testUsers {
	t.Helper()
	ctl := testutil.EnsureGroup(t, "udsv-ctl")
	ro := testutil.EnsureGroup(t, "udsv-ro")
	return testUsers{
		ctlGID:   int(ctl),
		roGID:    int(ro),
		outsider: testutil.EnsureUser(t, "udsv-a"),
		operator: testutil.EnsureUser(t, "udsv-op", "udsv-ctl"),
		reader:   testutil.EnsureUser(t, "udsv-reader", "udsv-ro"),
	}
}

// TestT16PeerAuthorization runs requests as real users over a real socket
// whose mode was loosened to 0666, so that only the peer check stands
// between each caller and the API.
func TestT16PeerAuthorization(t *testing.T) {
	us := ensureUsers(t)
	bin := testutil.CopyTestBinary(t)
	for _, fallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("procFallback=%v", fallback), func(t *testing.T) {
			b := newFake()
			ts := startServer(t, b, Options{ControlGID: us.ctlGID, StatusGID: us.roGID}, us.ctlGID, 0o666,
				func(s *Server) { s.noPeerGroups = fallback })
			get := helperRequest{Sock: ts.sock, Method: "GET", Path: "/v1/services/web"}
			restart := helperRequest{Sock: ts.sock, Method: "POST", Path: "/v1/services/web/restart"}

			if code, _ := ts.do(t, "POST", "/v1/services/web/restart", ""); code != http.StatusOK {
				t.Errorf("root: POST restart = %d, want 200", code)
			}
			want := 1 // restarts so far
			cases := []struct {
				who    testutil.User
				groups []uint32
				req    helperRequest
				status int
				msg    string // in the body of a refusal
			}{
				{us.operator, []uint32{uint32(us.ctlGID)}, restart, 200, ""},
				{us.operator, []uint32{uint32(us.ctlGID)}, get, 200, ""},
				{us.reader, []uint32{uint32(us.roGID)}, get, 200, ""},
				{us.reader, []uint32{uint32(us.roGID)}, restart, 403,
					fmt.Sprintf("permission denied: uid %d may only read (group udsv-ro); POST /v1/services/web/restart needs root or group udsv-ctl", us.reader.UID)},
				{us.outsider, nil, get, 403,
					fmt.Sprintf("permission denied: uid %d is not root and not in group udsv-ctl or udsv-ro", us.outsider.UID)},
				{us.outsider, nil, restart, 403, "permission denied"},
				{us.outsider, nil, helperRequest{Sock: ts.sock, Method: "GET", Path: "/nonexistent"}, 403, "permission denied"},
				// The user's groups at connect time count, not the group
				// database: the operator without udsv-ctl is an outsider.
				{us.operator, nil, restart, 403, "permission denied"},
			}
			for _, c := range cases {
				code, res := requestAs(t, bin, c.who, c.groups, c.req)
				if code != helperOK {
					t.Fatalf("%s %s as %s: helper exit %d", c.req.Method, c.req.Path, c.who.Name, code)
				}
				if res.Status != c.status || !strings.Contains(res.Body, c.msg) {
					t.Errorf("%s %s as %s (groups %v): %d %s, want %d with %q",
						c.req.Method, c.req.Path, c.who.Name, c.groups, res.Status, res.Body, c.status, c.msg)
				}
				if c.status == 200 && c.req.Method == "POST" {
					want++
				}
			}
			if got := b.Service("web").Restarts; got != want {
				t.Errorf("web restarted %d times, want %d: a refused request changed state", got, want)
			}
		})
	}
}

// TestT16HostileClientName binds the outsider's client socket to a name that
// a parser of "key=value;" strings would read as uid 0 (snapd's
// dirty_sock, CVE-2019-7304): the server still sees the real uid.
func TestT16HostileClientName(t *testing.T) {
	us := ensureUsers(t)
	bin := testutil.CopyTestBinary(t)
	ts := startServer(t, newFake(), Options{ControlGID: us.ctlGID, StatusGID: -1}, us.ctlGID, 0o666, nil)
	bind := fmt.Sprintf("/tmp/udsv-%d;uid=0;gid=0;pid=1;", os.Getpid())
	os.Remove(bind)
	t.Cleanup(func() { os.Remove(bind) })
	code, res := requestAs(t, bin, us.outsider, nil, helperRequest{Sock: ts.sock, Method: "GET", Path: "/v1/services", Bind: bind})
	if code != helperOK {
		t.Fatalf("helper exit %d", code)
	}
	want := fmt.Sprintf("permission denied: uid %d is not root and not in group udsv-ctl", us.outsider.UID)
	if res.Status != http.StatusForbidden || !strings.Contains(res.Body, want) {
		t.Errorf("outsider bound to %q: %d %s, want 403 %q", bind, res.Status, res.Body, want)
	}
}

// TestT16SocketModeFirstGate checks the production shape: mode 0660 and
// group udsv-ctl, where the kernel refuses an outsider's connect before
// the server sees it, and a supplementary member of the group gets in.
func TestT16SocketModeFirstGate(t *testing.T) {
	us := ensureUsers(t)
	bin := testutil.CopyTestBinary(t)
	b := newFake()
	ts := startServer(t, b, Options{ControlGID: us.ctlGID, StatusGID: -1}, us.ctlGID, 0o660, nil)
	restart := helperRequest{Sock: ts.sock, Method: "POST", Path: "/v1/services/web/restart"}
	if code, _ := requestAs(t, bin, us.outsider, nil, restart); code != helperEACCES {
		t.Errorf("outsider connect: helper exit %d, want %d (EACCES)", code, helperEACCES)
	}
	code, res := requestAs(t, bin, us.operator, []uint32{uint32(us.ctlGID)}, restart)
	if code != helperOK || res.Status != http.StatusOK {
		t.Fatalf("operator POST restart: exit %d, %d %s", code, res.Status, res.Body)
	}
	if got := b.Service("web").Restarts; got != 1 {
		t.Errorf("web restarted %d times, want 1", got)
	}
}

// TestRootOnly: with no groups configured only uid 0 may do anything.
func TestRootOnly(t *testing.T) {
	us := ensureUsers(t)
	bin := testutil.CopyTestBinary(t)
	ts := startServer(t, newFake(), Options{ControlGID: -1, StatusGID: -1}, 0, 0o666, nil)
	if code, _ := ts.do(t, "GET", "/v1/services", ""); code != http.StatusOK {
		t.Errorf("root: GET = %d, want 200", code)
	}
	code, res := requestAs(t, bin, us.operator, []uint32{uint32(us.ctlGID)}, helperRequest{Sock: ts.sock, Method: "GET", Path: "/v1/services"})
	want := fmt.Sprintf(`"permission denied: uid %d is not root"`, us.operator.UID)
	if code != helperOK || res.Status != http.StatusForbidden || !strings.Contains(res.Body, want) {
		t.Errorf("operator: exit %d, %d %s; want 403 %s", code, res.Status, res.Body, want)
	}
}

// TestT16HandlerWithoutCredentials: a request that reaches the handler with
// no credentials in its context is refused, never treated as root.
func TestT16HandlerWithoutCredentials(t *testing.T) {
	b := newFake()
	h := New(b, Options{ControlGID: -1, StatusGID: -1}).Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/services/web/restart", nil))
	if rec.Code != http.StatusForbidden || b.Service("web").Restarts != 0 {
		t.Errorf("no credentials: %d %s, restarts %d; want 403 and no restart", rec.Code, rec.Body, b.Service("web").Restarts)
	}
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/v1/services/web/restart", nil)
	h.ServeHTTP(rec, req.WithContext(withPeer(context.Background(), peercred.Creds{UID: 0})))
	if rec.Code != http.StatusOK || b.Service("web").Restarts != 1 {
		t.Errorf("root in context: %d %s; want 200 and a restart", rec.Code, rec.Body)
	}
}
