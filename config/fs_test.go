// SPDX-License-Identifier: Apache-2.0

//go:build linux

package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

func mkdir(t *testing.T, dir string, mode fs.FileMode, uid int) string {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Chmod after Mkdir: the umask would drop bits, and sticky needs it.
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, 0); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestT2SocketDirectories covers the catalogue rows that need directories
// in a given state; everything is read-only for Parse, so the test also
// checks that nothing was created.
func TestT2SocketDirectories(t *testing.T) {
	a := testutil.EnsureUser(t, "udsv-a")
	run := testutil.RunDir(t)
	owned := mkdir(t, filepath.Join(run, "owned"), 0o777, int(a.UID))
	groupw := mkdir(t, filepath.Join(run, "groupw"), 0o775, 0)
	sticky := mkdir(t, filepath.Join(run, "sticky"), 0o777|fs.ModeSticky, 0)
	mkdir(t, filepath.Join(sticky, "app"), 0o755, 0)
	real := mkdir(t, filepath.Join(run, "real"), 0o755, 0)
	if err := os.Symlink("real", filepath.Join(run, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(run, "dangling")); err != nil {
		t.Fatal(err)
	}
	// A live socket at the path is fine: udsvisor decides at bind time
	// whether it is stale.
	ln, err := net.Listen("unix", filepath.Join(real, "live.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	runCases(t, []badCase{
		{"owned by another user", sock(`path = "` + owned + `/a.sock"`),
			[]string{p5 + fmt.Sprintf("directory %s is owned by uid %d, mode 0777; refusing", owned, a.UID)}, nil},
		{"below a directory owned by another user", sock(`path = "` + owned + `/sub/a.sock"`),
			[]string{p5 + fmt.Sprintf("directory %s is owned by uid %d, mode 0777; refusing", owned, a.UID)}, nil},
		{"group-writable", sock(`path = "` + groupw + `/a.sock"`),
			[]string{p5 + groupw + " is group-writable; others could squat or replace the socket"}, nil},
		{"sticky parent", sock(`path = "` + sticky + `/a.sock"`),
			[]string{p5 + sticky + " is world-writable; others could squat or replace the socket"}, nil},
		{"sticky grandparent", sock(`path = "` + sticky + `/app/a.sock"`), nil, nil},
		{"missing directories", sock(`path = "` + run + `/new/deeper/a.sock"`), nil, nil},
		{"symlink", sock(`path = "` + run + `/link/a.sock"`),
			[]string{p5 + fmt.Sprintf("%s/link is a symlink to %s; write %q", run, real, real+"/a.sock")}, nil},
		{"dangling symlink", sock(`path = "` + run + `/dangling/a.sock"`),
			[]string{p5 + run + "/dangling is a symlink; write the path without symlinks"}, nil},
		{"symlink as the socket", sock(`path = "` + run + `/link"`),
			[]string{p5 + run + "/link exists and is a symlink, not a socket"}, nil},
		{"live socket", sock(`path = "` + real + `/live.sock"`), nil, nil},
	})
	if _, err := os.Lstat(filepath.Join(run, "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Parse created a directory: %v", err)
	}
}

// TestT20CommandPermissions: a program others can replace would run their
// code as the service (SECURITY-NOTES T20).
func TestT20CommandPermissions(t *testing.T) {
	testutil.RequireRoot(t)
	run := testutil.RunDir(t)
	write := func(dir, name string, mode fs.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	open := mkdir(t, filepath.Join(run, "open"), 0o777, 0)
	owOpen := write(run, "ow", 0o757)
	gw := write(run, "gw", 0o775)
	inOpen := write(open, "app", 0o755)
	rootOnly := write(run, "rootonly", 0o700)
	cmd := func(p string) string { return "[services.api]\ncommand = [\"" + p + "\"]\nuser = \"daemon\"\n" }
	c2 := "services.toml:2: services.api.command[0]: "
	runCases(t, []badCase{
		{"writable by others", cmd(owOpen), []string{c2 + owOpen + " is writable by others; anyone could replace the program"}, nil},
		{"directory writable by others", cmd(inOpen), []string{c2 + "directory " + open + " is writable by others; anyone could replace the program"}, nil},
		{"group-writable", cmd(gw), nil, []string{c2 + gw + " is writable by its group"}},
		{"not executable by the user", cmd(rootOnly), []string{c2 + fmt.Sprintf("%q is not executable by user \"daemon\"", rootOnly)}, nil},
		{"root may run it", strings.Replace(cmd(rootOnly), `"daemon"`, "\"root\"\nallow_root = true", 1), nil, nil},
		{"working_dir writable by others", cmd("/usr/bin/true") + `working_dir = "` + open + `"`, nil,
			[]string{"services.toml:4: services.api.working_dir: " + open + " is writable by others"}},
		{"sticky working_dir", cmd("/usr/bin/true") + `working_dir = "/tmp"`, nil, nil},
	})
}

// TestT19LoadRefusesWritableConfig is T19: whoever can write the config
// picks what runs as whom.
func TestT19LoadRefusesWritableConfig(t *testing.T) {
	a := testutil.EnsureUser(t, "udsv-a")
	dir := testutil.RunDir(t)
	valid := []byte(base)
	write := func(name string, mode fs.FileMode, uid int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, valid, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, 0); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		name string
		mode fs.FileMode
		uid  int
		want []string
	}{
		{"0666", 0o666, 0, []string{"is writable by group and others; refusing"}},
		{"0664", 0o664, 0, []string{"is writable by group; refusing"}},
		{"0646", 0o646, 0, []string{"is writable by others; refusing"}},
		{"user-owned", 0o644, int(a.UID), []string{fmt.Sprintf("is owned by uid %d; refusing", a.UID)}},
		{"user-owned 0666", 0o666, int(a.UID), []string{
			fmt.Sprintf("is owned by uid %d; refusing", a.UID),
			"is writable by group and others; refusing",
		}},
		{"0644 root", 0o644, 0, nil},
		{"0400 root", 0o400, 0, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := write("services-"+tt.name+".toml", tt.mode, tt.uid)
			cfg, err := Load(p)
			if tt.want == nil {
				if err != nil || cfg == nil || cfg.File != p || serviceNamed(cfg, "api") == nil {
					t.Fatalf("Load = %v, %v", cfg, err)
				}
				return
			}
			if cfg != nil {
				t.Error("Load returned a config for a refused file")
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, p+": "+w)
			}
			var es Errors
			if !errors.As(err, &es) || !reflect.DeepEqual(messages(es), want) {
				t.Fatalf("Load error:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "missing.toml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v is not ErrNotExist", err)
	}
	if want := filepath.Join(dir, "missing.toml") + ": open: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("missing file: %v, want %s", err, want)
	}
	_, err = Load(dir)
	if want := dir + ": is a directory, not a regular file; refusing"; err == nil || err.Error() != want {
		t.Errorf("directory: %v, want %s", err, want)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte(base+"user = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if want := bad + ":4: key 'services.api.user' has already been defined"; err == nil || err.Error() != want {
		t.Errorf("duplicate key: %v, want %s", err, want)
	}
}

// TestT29CommandOwnership: a command that someone but root (or, for a
// service that is not root, its own user) could replace is refused,
// whether through the file's owner, a directory's owner, group write or
// a symlink into a directory others may write.
func TestT29CommandOwnership(t *testing.T) {
	a := testutil.EnsureUser(t, "udsv-a")
	testutil.EnsureUser(t, "udsv-b")
	run := testutil.RunDir(t)
	write := func(dir, name string, mode fs.FileMode, uid uint32) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, int(uid), 0); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ownedByA := write(run, "a-owned", 0o755, a.UID)
	aDir := mkdir(t, filepath.Join(run, "a-dir"), 0o755, int(a.UID))
	inADir := write(aDir, "app", 0o755, 0)
	groupWritable := write(run, "gw", 0o775, 0)
	open := mkdir(t, filepath.Join(run, "open"), 0o777, 0)
	target := write(open, "app", 0o755, 0)
	link := filepath.Join(run, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	asRoot := func(p string) string {
		return "[services.api]\ncommand = [\"" + p + "\"]\nuser = \"root\"\nallow_root = true\n"
	}
	asUser := func(p, user string) string {
		return "[services.api]\ncommand = [\"" + p + "\"]\nuser = \"" + user + "\"\n"
	}
	c2 := "services.toml:2: services.api.command[0]: "
	runCases(t, []badCase{
		{"T29 root service, file owned by a user", asRoot(ownedByA),
			[]string{c2 + fmt.Sprintf("%s is owned by uid %d, who could replace the program; it must belong to root", ownedByA, a.UID)}, nil},
		{"T29 root service, directory owned by a user", asRoot(inADir),
			[]string{c2 + fmt.Sprintf("directory %s is owned by uid %d, who could replace the program; it must belong to root", aDir, a.UID)}, nil},
		{"T29 root service, group-writable file", asRoot(groupWritable),
			[]string{c2 + groupWritable + " is writable by its group, whose members could replace a program that runs as root"}, nil},
		{"T29 root service, symlink into an open directory", asRoot(link),
			[]string{c2 + "directory " + open + " is writable by others; anyone could replace the program"}, nil},
		{"T29 service's own user may own it", asUser(ownedByA, "udsv-a"), nil, nil},
		{"T29 another user's file", asUser(ownedByA, "udsv-b"),
			[]string{c2 + fmt.Sprintf("%s is owned by uid %d, who could replace the program; it must belong to root or to the service's user udsv-b", ownedByA, a.UID)}, nil},
	})
}

// TestT29ConfigDirectories: Load refuses a config file in a directory
// that someone but root could write, and accepts one in a sticky one.
func TestT29ConfigDirectories(t *testing.T) {
	a := testutil.EnsureUser(t, "udsv-a")
	run := testutil.RunDir(t)
	for _, tt := range []struct {
		name string
		mode fs.FileMode
		uid  int
		want string
	}{
		{"owned by a user", 0o755, int(a.UID), fmt.Sprintf("owned by uid %d, who could replace it; refusing", a.UID)},
		{"group-writable", 0o775, 0, "which group or others may write (0775), so they could replace it; refusing"},
		{"sticky and open", 0o777 | fs.ModeSticky, 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := mkdir(t, filepath.Join(run, strings.ReplaceAll(tt.name, " ", "-")), tt.mode, tt.uid)
			p := filepath.Join(dir, "services.toml")
			if err := os.WriteFile(p, []byte(base), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Load: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), "is in directory "+dir+", ") || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Load: %v, want an error about %s: %s", err, dir, tt.want)
			}
		})
	}
}
