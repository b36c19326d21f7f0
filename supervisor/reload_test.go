// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/internal/testutil"
)

// reloadService is one service of the reload test's config.
func reloadService(name, extra, sockExtra string) string {
	return fmt.Sprintf(`
[services.%[1]s]
command = ["$APP"]
user = "udsv-a"
%[2]s
[[services.%[1]s.sockets]]
path = "$DIR/%[1]s.sock"
%[3]s
`, name, extra, sockExtra)
}

// startFromFile writes text to a config file and runs a supervisor on
// it, as up does, so that Reload can re-read the file.
func startFromFile(t *testing.T, text string) (*harness, string) {
	t.Helper()
	testutil.RequireRoot(t)
	dir := testutil.RunDir(t)
	file := filepath.Join(dir, "services.toml")
	writeConfig(t, file, dir, text)
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return startCfg(t, dir, cfg), file
}

func writeConfig(t *testing.T, file, dir, text string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(expand(text, dir)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Reload adds, removes, changes and leaves alone exactly the right
// services: an unchanged service keeps its pid and socket, a changed one
// is restarted on the same socket, an ownership-only change is applied to
// the live socket without a restart.
func TestReloadAppliesTheDifference(t *testing.T) {
	users(t)
	before := reloadService("keep", "", "") + reloadService("change", `environment = { V = "1" }`, "") +
		reloadService("remove", "", "") + reloadService("reown", "", `mode = "0660"`)
	after := reloadService("keep", "", "") + reloadService("change", `environment = { V = "2" }`, "") +
		reloadService("reown", "", `mode = "0600"`) + reloadService("add", "", "")
	h, file := startFromFile(t, before)
	sock := func(name string) string { return filepath.Join(h.dir, name+".sock") }
	pids := map[string]int{}
	type identity struct {
		ino   uint64
		btime any
	}
	ids := map[string]identity{}
	for _, name := range []string{"keep", "change", "remove", "reown"} {
		rep, err := getReport(sock(name))
		if err != nil {
			t.Fatal(err)
		}
		pids[name] = rep.Pid
		ino, bt := statxIdentity(t, sock(name))
		ids[name] = identity{ino, bt}
	}

	writeConfig(t, file, h.dir, after)
	res, err := h.sup.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		got, want []string
	}{
		{res.Added, []string{"add"}}, {res.Removed, []string{"remove"}},
		{res.Changed, []string{"change", "reown"}}, {res.Unchanged, []string{"keep"}},
	} {
		slices.Sort(c.got)
		if !slices.Equal(c.got, c.want) {
			t.Errorf("reload result %+v", res)
			break
		}
	}

	for name, samePid := range map[string]bool{"keep": true, "reown": true, "change": false} {
		rep, err := getReport(sock(name))
		if err != nil {
			t.Fatalf("%s after reload: %v", name, err)
		}
		if (rep.Pid == pids[name]) != samePid {
			t.Errorf("%s: pid %d before, %d after; same pid wanted: %v", name, pids[name], rep.Pid, samePid)
		}
		if ino, bt := statxIdentity(t, sock(name)); (identity{ino, bt}) != ids[name] {
			t.Errorf("%s: socket re-created by the reload", name)
		}
	}
	if rep, _ := getReport(sock("change")); !slices.Contains(rep.Env, "V=2") {
		t.Errorf("changed service runs with %v, want V=2", rep.Env)
	}
	if fi, err := os.Lstat(sock("reown")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("reowned socket: %v %v, want mode 0600", fi.Mode(), err)
	}
	if _, err := getReport(sock("add")); err != nil {
		t.Errorf("added service: %v", err)
	}
	if _, err := os.Lstat(sock("remove")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed service's socket: %v", err)
	}
	// Reload returns once the removed service's process is reaped.
	if alive(pids["remove"]) {
		t.Errorf("removed service's pid %d alive", pids["remove"])
	}
	if _, err := h.sup.Status(context.Background(), "remove"); !errors.Is(err, ErrUnknownService) {
		t.Errorf("status of the removed service: %v", err)
	}
}

// A broken config is rejected whole, with every error, and nothing
// changes.
func TestBrokenReloadChangesNothing(t *testing.T) {
	users(t)
	text := reloadService("a", "", "") + reloadService("b", "", "")
	h, file := startFromFile(t, text)
	pa := h.waitState("a", Starting).Pid
	pb := h.waitState("b", Starting).Pid

	broken := strings.Replace(text, `user = "udsv-a"`, `user = "nosuch-user"`, 1) +
		reloadService("c", `restart = "sometimes"`, "")
	writeConfig(t, file, h.dir, broken)
	_, err := h.sup.Reload(context.Background())
	var ce config.Errors
	if !errors.As(err, &ce) || len(ce) != 2 {
		t.Fatalf("reload of a broken config: %v, want 2 config errors", err)
	}
	if h.status("a").Pid != pa || h.status("b").Pid != pb {
		t.Error("a broken reload restarted a service")
	}
	if _, err := os.Lstat(filepath.Join(h.dir, "c.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a broken reload bound a socket: %v", err)
	}
}

// T26: a start that races a reload which replaces the service (here, its
// user) never revives the old definition: it is refused while the old
// process stops, and afterwards exactly one process runs, the new
// definition's, and a stop leaves none.
func TestT26StartDuringReloadNeverRevivesTheOld(t *testing.T) {
	a := users(t)
	b := testutil.EnsureUser(t, "udsv-b")
	web := func(user string) string {
		return `
[services.web]
command = ["$APP", "-ignore-term"]
user = "` + user + `"
stop_timeout = "1s"

[[services.web.sockets]]
path = "$DIR/web.sock"
`
	}
	h, file := startFromFile(t, web("udsv-a"))
	// Once it answers, it ignores SIGTERM.
	rep, err := getReport(filepath.Join(h.dir, "web.sock"))
	if err != nil {
		t.Fatal(err)
	}
	old := rep.Pid
	writeConfig(t, file, h.dir, web("udsv-b"))
	ctx := context.Background()
	reloaded := make(chan error, 1) // Reload answers once; nobody waits for the sender
	go func() {
		_, err := h.sup.Reload(ctx)
		reloaded <- err
	}()
	// The old process ignores SIGTERM, so it stops only at stop_timeout:
	// a start now reaches the old definition.
	h.waitState("web", Stopping)
	if err := h.sup.Start(ctx, "web"); !errors.Is(err, ErrReplaced) {
		t.Errorf("start during the reload: %v, want ErrReplaced", err)
	}
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	st := h.status("web")
	if alive(old) {
		t.Errorf("the old process %d is alive", old)
	}
	if pids := appProcesses(t, a.UID); len(pids) != 0 {
		t.Errorf("processes of the old definition (user udsv-a) after the reload: %v", pids)
	}
	if pids := appProcesses(t, b.UID); len(pids) != 1 || pids[0] != st.Pid {
		t.Errorf("processes of the new definition: %v, want exactly the service's pid %d", pids, st.Pid)
	}
	if err := h.sup.Stop(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if pids := append(appProcesses(t, a.UID), appProcesses(t, b.UID)...); len(pids) != 0 {
		t.Errorf("processes after stop: %v", pids)
	}
}

// appProcesses lists the live processes running the test app as uid.
func appProcesses(t *testing.T, uid uint32) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || exe != testApp {
			continue
		}
		st, err := testutil.ProcStatus(pid)
		if err != nil || !alive(pid) {
			continue
		}
		if f := strings.Fields(st["Uid"]); len(f) > 0 && f[0] == strconv.Itoa(int(uid)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// A reload that changes only a socket's backlog applies it to the live
// socket: the reload succeeds, the process and the socket stay, and the
// kernel reports the new backlog (issue 10, item 7).
func TestReloadBacklogInPlace(t *testing.T) {
	users(t)
	testutil.RequireCommand(t, "ss")
	h, file := startFromFile(t, reloadService("web", "", "backlog = 16"))
	if _, err := getReport(filepath.Join(h.dir, "web.sock")); err != nil {
		t.Fatal(err)
	}
	before := h.status("web")
	if got := backlogOf(t, before.Pid); got != 16 {
		t.Fatalf("backlog %d at start, want 16", got)
	}
	writeConfig(t, file, h.dir, reloadService("web", "", "backlog = 64"))
	res, err := h.sup.Reload(context.Background())
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if !slices.Equal(res.Changed, []string{"web"}) {
		t.Errorf("reload result %+v, want web changed", res)
	}
	if after := h.status("web"); after.Pid != before.Pid {
		t.Errorf("pid %d after the reload, want the same %d", after.Pid, before.Pid)
	}
	if got := backlogOf(t, before.Pid); got != 64 {
		t.Errorf("backlog %d after the reload, want 64", got)
	}
}

// backlogOf is the listen backlog of the listening socket pid holds, as
// ss reports it (the Send-Q of a listening socket), found by its inode.
func backlogOf(t *testing.T, pid int) int {
	t.Helper()
	fds, err := testutil.ProcFDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, target := range fds {
		if ino, ok := strings.CutPrefix(target, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	out, err := exec.Command("ss", "-xlnH").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		// u_str LISTEN Recv-Q Send-Q address inode * 0
		if len(f) >= 6 && inodes[f[5]] {
			n, err := strconv.Atoi(f[3])
			if err != nil {
				t.Fatalf("ss: %q", line)
			}
			return n
		}
	}
	t.Fatalf("no listening socket of pid %d (fds %v) in ss -xln", pid, fds)
	return 0
}
