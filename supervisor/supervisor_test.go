// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"syscall"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

const appConfig = `
[services.app]
command = ["$APP"]
user = "udsv-a"
supplementary_groups = ["udsv-g1", "udsv-g2"]
environment = { APP_ENV = "test" }

[[services.app.sockets]]
name = "http"
path = "$DIR/app/http.sock"
group = "udsv-g1"
mode = "0660"
directory_mode = "0750"

[[services.app.sockets]]
name = "metrics"
path = "$DIR/app/metrics.sock"
mode = "0600"
`

func users(t *testing.T) testutil.User {
	t.Helper()
	testutil.EnsureGroup(t, "udsv-g1")
	testutil.EnsureGroup(t, "udsv-g2")
	return testutil.EnsureUser(t, "udsv-a")
}

// The child runs as its own user with exactly the configured groups, no
// capabilities and no_new_privs, and receives its sockets by name through
// go-systemd's activation with a LISTEN_PID equal to its own pid.
func TestChildIdentityAndSockets(t *testing.T) {
	u := users(t)
	h := start(t, appConfig)
	st := h.waitState("app", Starting)
	for _, sock := range []string{"http", "metrics"} {
		rep, err := getReport(filepath.Join(h.dir, "app", sock+".sock"))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Pid != st.Pid || rep.ListenPID != strconv.Itoa(st.Pid) {
			t.Errorf("pid %d, LISTEN_PID %q; udsvisor says pid %d", rep.Pid, rep.ListenPID, st.Pid)
		}
		if rep.Socket != sock || !slices.Equal(rep.Names, []string{"http", "metrics"}) {
			t.Errorf("served %q with names %v, want %q of [http metrics]", rep.Socket, rep.Names, sock)
		}
		if rep.ListenFDs != "2" || rep.FDNames != "http:metrics" {
			t.Errorf("LISTEN_FDS=%q LISTEN_FDNAMES=%q", rep.ListenFDs, rep.FDNames)
		}
	}

	ps, err := testutil.ProcStatus(st.Pid)
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := strconv.Itoa(int(u.UID)), strconv.Itoa(int(u.GID))
	want := map[string]string{
		"Uid":        strings.Join([]string{uid, uid, uid, uid}, "\t"),
		"Gid":        strings.Join([]string{gid, gid, gid, gid}, "\t"),
		"NoNewPrivs": "1",
		"CapInh":     "0000000000000000",
		"CapPrm":     "0000000000000000",
		"CapEff":     "0000000000000000",
		"CapAmb":     "0000000000000000",
		"SigIgn":     "0000000000000000",
		"SigBlk":     "0000000000000000",
	}
	for k, v := range want {
		if ps[k] != v {
			t.Errorf("/proc/%d/status %s = %q, want %q", st.Pid, k, ps[k], v)
		}
	}
	g1 := testutil.EnsureGroup(t, "udsv-g1")
	g2 := testutil.EnsureGroup(t, "udsv-g2")
	gotGroups := strings.Fields(ps["Groups"])
	wantGroups := []string{strconv.Itoa(int(g1)), strconv.Itoa(int(g2))}
	slices.Sort(gotGroups)
	slices.Sort(wantGroups)
	if !slices.Equal(gotGroups, wantGroups) {
		t.Errorf("Groups %v, want exactly %v", gotGroups, wantGroups)
	}

	env, err := testutil.ProcEnviron(st.Pid)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(env)
	pw, err := user.Lookup("udsv-a")
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := []string{
		"APP_ENV=test", "HOME=" + pw.HomeDir, "LISTEN_FDNAMES=http:metrics", "LISTEN_FDS=2",
		"LISTEN_PID=" + strconv.Itoa(st.Pid), "LISTEN_PIDFDID=" + testutil.PidfdID(t, st.Pid), "LOGNAME=udsv-a", "PATH=/usr/local/bin:/usr/bin:/bin",
		"UDSVISOR_INSTANCE=0", "USER=udsv-a",
	}
	if !slices.Equal(env, wantEnv) {
		t.Errorf("environment\n got %q\nwant %q", env, wantEnv)
	}
}

// The sockets and the directory udsvisor created carry exactly the
// configured owner, group and mode on disk.
func TestSocketOwnershipOnDisk(t *testing.T) {
	u := users(t)
	h := start(t, appConfig)
	g1 := testutil.EnsureGroup(t, "udsv-g1")
	for _, c := range []struct {
		path     string
		uid, gid uint32
		mode     os.FileMode
	}{
		{filepath.Join(h.dir, "app"), 0, g1, os.ModeDir | 0o750},
		{filepath.Join(h.dir, "app", "http.sock"), u.UID, g1, os.ModeSocket | 0o660},
		{filepath.Join(h.dir, "app", "metrics.sock"), u.UID, u.GID, os.ModeSocket | 0o600},
	} {
		fi, err := os.Lstat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		sys := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != c.mode || sys.Uid != c.uid || sys.Gid != c.gid {
			t.Errorf("%s: %v %d:%d, want %v %d:%d", c.path, fi.Mode(), sys.Uid, sys.Gid, c.mode, c.uid, c.gid)
		}
	}
}

// A child's fds are exactly stdin (/dev/null), stdout, stderr and its own
// sockets: not another service's, and not an fd the supervisor holds
// without close-on-exec (as one inherited from udsvisor's launcher).
func TestChildFDsAreExactlyItsOwn(t *testing.T) {
	users(t)
	// An fd without O_CLOEXEC, as a launcher's leaked fd would be.
	leak, err := unix.Open("/etc/hostname", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(leak)
	h := start(t, `
[services.one]
command = ["/bin/sleep", "1000"]
user = "udsv-a"
[[services.one.sockets]]
path = "$DIR/one/a.sock"
[[services.one.sockets]]
path = "$DIR/one/b.sock"
name = "b"

[services.two]
command = ["/bin/sleep", "1000"]
user = "udsv-a"
[[services.two.sockets]]
path = "$DIR/two/c.sock"
`)
	for name, n := range map[string]int{"one": 2, "two": 1} {
		st := h.waitState(name, Starting)
		testutil.WaitNanosleep(t, st.Pid)
		fds, err := testutil.ProcFDs(st.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if len(fds) != 3+n || fds[0] != "/dev/null" {
			t.Errorf("%s: fds %v, want 0=/dev/null, 1, 2 and %d sockets", name, fds, n)
		}
		for i, f := range h.sup.view.Load().services[name].svc.files() {
			var stt unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &stt); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("socket:[%d]", stt.Ino)
			if fds[3+i] != want {
				t.Errorf("%s: fd %d is %q, want its own listening socket %s", name, 3+i, fds[3+i], want)
			}
		}
		for _, fd := range []int{1, 2} {
			if !strings.HasPrefix(fds[fd], "pipe:") {
				t.Errorf("%s: fd %d is %q, want a pipe to udsvisor's log", name, fd, fds[fd])
			}
		}
	}
}

// kill -9 of the child: every request sent during the restart gap is
// answered (none refused, the socket file never missing), by a new
// process, on the very same socket (same inode and birth time).
func TestKill9RequestsDuringRestartAreServed(t *testing.T) {
	users(t)
	h := start(t, appConfig)
	sock := filepath.Join(h.dir, "app", "http.sock")
	before, err := getReport(sock)
	if err != nil {
		t.Fatal(err)
	}
	ino, btime := statxIdentity(t, sock)

	if err := unix.Kill(before.Pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Requests fired at once: most connect while no process accepts and
	// wait in the backlog.
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n) // one result per request, never blocking
	pids := make(chan int, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := getReport(sock)
			if err != nil {
				errs <- err
				return
			}
			pids <- rep.Pid
		}()
	}
	wg.Wait()
	close(errs)
	close(pids)
	for err := range errs {
		t.Errorf("request during restart: %v", err)
	}
	for pid := range pids {
		if pid == before.Pid {
			t.Errorf("answered by the killed pid %d", pid)
		}
	}
	if ino2, btime2 := statxIdentity(t, sock); ino2 != ino || btime2 != btime {
		t.Errorf("socket re-created: inode %d btime %v, before %d %v", ino2, btime2, ino, btime)
	}
	st := h.status("app")
	if st.Restarts != 1 || st.LastExit == nil || st.LastExit.String() != "killed by SIGKILL" {
		t.Errorf("status after kill: restarts %d, last exit %v", st.Restarts, st.LastExit)
	}
}

// statxIdentity returns the inode and birth time of path: an inode
// number alone is reused at once by ext4 and tmpfs after unlink + bind.
func statxIdentity(t *testing.T, path string) (uint64, unix.StatxTimestamp) {
	t.Helper()
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_INO|unix.STATX_BTIME, &stx); err != nil {
		t.Fatal(err)
	}
	return stx.Ino, stx.Btime
}

// A connection made while no process runs waits in the backlog and is
// served by the next process.
func TestConnectionQueuedWhileStoppedIsServedAfterStart(t *testing.T) {
	users(t)
	h := start(t, appConfig)
	ctx := context.Background()
	if err := h.sup.Stop(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("unix", filepath.Join(h.dir, "app", "http.sock"))
	if err != nil {
		t.Fatalf("connect while stopped: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /slow?d=0s HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := h.sup.Start(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 512)
	n, _ := conn.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.0 200") {
		t.Errorf("queued request got %q", buf[:n])
	}
}

// Each line the child writes is logged with the service name and pid.
func TestChildOutputIsLogged(t *testing.T) {
	users(t)
	h := start(t, strings.Replace(appConfig, `command = ["$APP"]`, `command = ["$APP", "-hello", "line from the app"]`, 1))
	st := h.waitState("app", Starting)
	h.logs.waitFor(t, "line with the child's output, service and pid", func(log string) bool {
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, "line from the app (stderr)") &&
				strings.Contains(line, `"service": "app"`) &&
				strings.Contains(line, fmt.Sprintf(`"pid": %d`, st.Pid)) {
				return true
			}
		}
		return false
	})
}

// T31: a service's output cannot drive the terminal of whoever reads
// udsvisor's log: control characters reach the log escaped, while the
// lines kept for ctl logs are what the service wrote.
func TestT31OutputEscapedInTheLog(t *testing.T) {
	users(t)
	const evil = `\u001b]0;owned\u0007\u001b[2J\rfake`
	h := start(t, strings.Replace(appConfig, `command = ["$APP"]`, `command = ["$APP", "-hello", "`+evil+`"]`, 1))
	const escaped = `\x1b]0;owned\a\x1b[2J\rfake`
	h.logs.waitFor(t, "escaped line", func(log string) bool { return strings.Contains(log, escaped+" (stderr)") })
	if i := strings.IndexAny(h.logs.String(), "\x1b\a\r"); i >= 0 {
		t.Errorf("the log holds a raw control character at byte %d", i)
	}
	lines, err := h.sup.Logs(t.Context(), "app", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(lines, func(l LogLine) bool { return l.Line == "\x1b]0;owned\a\x1b[2J\rfake" }) {
		t.Errorf("kept lines %+v, want the line as written among them", lines)
	}
}
