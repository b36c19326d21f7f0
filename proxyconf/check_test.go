// SPDX-License-Identifier: Apache-2.0

//go:build linux

package proxyconf

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// TestCheck runs the permission check with real users (www-data, and a
// test user with www-data as a supplementary group) against real and
// to-be-created directories.
func TestCheck(t *testing.T) {
	supp := testutil.EnsureUser(t, "udsv-proxy", "www-data")
	run := testutil.RunDir(t)
	mkdir := func(name string, mode os.FileMode, gid int) string {
		d := filepath.Join(run, name)
		if err := os.Mkdir(d, mode); err != nil {
			t.Fatal(err)
		}
		// Mkdir is subject to the umask; the mode under test is exact.
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, 0, gid); err != nil {
			t.Fatal(err)
		}
		return d
	}
	closed := mkdir("closed", 0o700, 0)
	groupClosed := mkdir("group-closed", 0o700, 33) // www-data on Debian
	// svc is a config whose socket table starts on line 4.
	svc := func(sock string) string {
		return "[services.api]\ncommand = [\"true\"]\nuser = \"daemon\"\n[[services.api.sockets]]\n" + sock + "\n[[services.api.proxy]]\nsocket = \"api\"\n"
	}
	at := "services.toml:4: services.api.sockets[0]: "
	for _, tt := range []struct {
		name, user, src string
		want            []string
	}{
		{"socket group not among the user's", "www-data",
			svc(`path = "` + run + `/a/api.sock"`),
			[]string{at + "www-data cannot connect to " + run + `/a/api.sock: the socket is daemon:daemon 0660 and www-data is not in group daemon (set group = "www-data")`}},
		{"same for a user with www-data as a supplementary group", supp.Name,
			svc(`path = "` + run + `/a/api.sock"`),
			[]string{at + "udsv-proxy cannot connect to " + run + `/a/api.sock: the socket is daemon:daemon 0660 and udsv-proxy is not in group daemon (set group = "udsv-proxy")`}},
		{"socket mode without group write", "www-data",
			svc(`path = "` + run + `/a/api.sock"` + "\ngroup = \"www-data\"\nmode = \"0640\""),
			[]string{at + "www-data cannot connect to " + run + `/a/api.sock: the socket is daemon:www-data 0640 and its group has no write permission (set mode = "0660")`}},
		{"neither group nor group write", "www-data",
			svc(`path = "` + run + `/a/api.sock"` + "\nmode = \"0600\""),
			[]string{at + "www-data cannot connect to " + run + `/a/api.sock: the socket is daemon:daemon 0600 and www-data is not in group daemon (set group = "www-data" and mode = "0620")`}},
		{"owner bits apply even when the group's would allow", "www-data",
			svc(`path = "` + run + `/a/api.sock"` + "\nowner = \"www-data\"\ngroup = \"www-data\"\nmode = \"0460\""),
			[]string{at + "www-data cannot connect to " + run + `/a/api.sock: the socket is www-data:www-data 0460 and its owner www-data has no write permission (set mode = "0660")`}},
		{"created 0750 directory of another group", "www-data",
			svc(`path = "` + run + `/b/api.sock"` + "\nmode = \"0666\"\ndirectory_mode = \"0750\""),
			[]string{at + "www-data cannot search " + run + `/b (root:daemon 0750): www-data is not in group daemon (set group = "www-data")`}},
		{"created 0700 directory of another group", "www-data",
			svc(`path = "` + run + `/b/c/api.sock"` + "\nmode = \"0666\"\ndirectory_mode = \"0700\""),
			[]string{at + "www-data cannot search " + run + `/b (root:daemon 0700): www-data is not in group daemon (set group = "www-data" and directory_mode = "0710")`}},
		{"created directory without group search", "www-data",
			svc(`path = "` + run + `/b/api.sock"` + "\ngroup = \"www-data\"\ndirectory_mode = \"0700\""),
			[]string{at + "www-data cannot search " + run + `/b (root:www-data 0700): its group may not search it (set directory_mode = "0710")`}},
		{"existing 0700 directory", "www-data",
			svc(`path = "` + closed + `/api.sock"` + "\ngroup = \"www-data\""),
			[]string{at + "www-data cannot search " + closed + " (root:root 0700): www-data is not in group root (chmod o+x " + closed + ")"}},
		{"existing directory of the user's group without group search", "www-data",
			svc(`path = "` + groupClosed + `/api.sock"` + "\ngroup = \"www-data\""),
			[]string{at + "www-data cannot search " + groupClosed + " (root:www-data 0700): its group may not search it (chmod g+x " + groupClosed + ")"}},
		{"directory and socket both closed", "www-data",
			svc(`path = "` + closed + `/api.sock"`),
			[]string{
				at + "www-data cannot search " + closed + " (root:root 0700): www-data is not in group root (chmod o+x " + closed + ")",
				at + "www-data cannot connect to " + closed + `/api.sock: the socket is daemon:daemon 0660 and www-data is not in group daemon (set group = "www-data")`,
			}},
		{"all fine", "www-data",
			svc(`path = "` + run + `/b/api.sock"` + "\ngroup = \"www-data\"\ndirectory_mode = \"0750\""), nil},
		{"all fine through a supplementary group", supp.Name,
			svc(`path = "` + run + `/b/api.sock"` + "\ngroup = \"www-data\"\ndirectory_mode = \"0750\""), nil},
		{"root is never refused", "root",
			svc(`path = "` + closed + `/api.sock"`), nil},
		{"numeric uid", "33",
			svc(`path = "` + run + `/b/api.sock"` + "\ngroup = \"www-data\"\ndirectory_mode = \"0750\""), nil},
		{"TCP is not checked", "www-data",
			svc(`listen = "127.0.0.1:18083"`), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Check(parse(t, tt.src), "nginx", tt.user)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestCheckHAProxyGroups: HAProxy setgid()s to its "group" and drops
// every other group (Debian 12's 2.6 shows no Groups in /proc/PID/status),
// so for haproxy a supplementary group does not open a socket, and the
// warning says so; Apache and the others keep them (initgroups).
func TestCheckHAProxyGroups(t *testing.T) {
	supp := testutil.EnsureUser(t, "udsv-proxy", "www-data")
	run := testutil.RunDir(t)
	src := func(group string) string {
		return "[services.api]\ncommand = [\"true\"]\nuser = \"daemon\"\n[[services.api.sockets]]\npath = \"" + run +
			"/b/api.sock\"\ngroup = \"" + group + "\"\ndirectory_mode = \"0750\"\n[[services.api.proxy]]\n"
	}
	at := "services.toml:4: services.api.sockets[0]: "
	dropped := `HAProxy drops udsv-proxy's supplementary group www-data and keeps only udsv-proxy (set group = "udsv-proxy")`
	for _, tt := range []struct {
		kind, group string
		want        []string
	}{
		{"haproxy", "www-data", []string{
			at + "udsv-proxy cannot search " + run + "/b (root:www-data 0750): " + dropped,
			at + "udsv-proxy cannot connect to " + run + "/b/api.sock: the socket is daemon:www-data 0660 and " + dropped,
		}},
		{"haproxy", supp.Name, nil},
		{"apache", "www-data", nil},
		{"caddy", "www-data", nil},
	} {
		got, err := Check(parse(t, src(tt.group)), tt.kind, supp.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s, socket group %s: warnings:\n%s\nwant:\n%s", tt.kind, tt.group, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
	}
}

// TestCheckOncePerSocket: two routes to one socket give one warning.
func TestCheckOncePerSocket(t *testing.T) {
	run := testutil.RunDir(t)
	cfg := parse(t, "[services.api]\ncommand = [\"true\"]\nuser = \"daemon\"\n[[services.api.sockets]]\npath = \""+run+"/api.sock\"\n"+
		"[[services.api.proxy]]\n[[services.api.proxy]]\nlocation = \"/v2/\"\n")
	got, err := Check(cfg, "nginx", "www-data")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Errorf("got %d warnings, want 1: %q", len(got), got)
	}
}

func TestCheckUnknownUser(t *testing.T) {
	_, err := Check(parse(t, goldenConfig), "nginx", "udsv-no-such-user")
	if err == nil || err.Error() != `unknown proxy user "udsv-no-such-user"` {
		t.Errorf("error %v", err)
	}
	_, err = Check(parse(t, goldenConfig), "nginx", "4000000")
	if err == nil || err.Error() != `unknown proxy user "4000000"` {
		t.Errorf("error %v", err)
	}
}
