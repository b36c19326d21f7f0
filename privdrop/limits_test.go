// SPDX-License-Identifier: Apache-2.0

//go:build linux

package privdrop_test

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
	"github.com/udsvisor/udsvisor/privdrop"
)

// TestRlimits checks that the command runs with the configured soft and
// hard limits, as /proc/PID/limits shows them. The command is sleep, not
// the Go probe: a Go program raises its own soft nofile to the hard
// limit at start-up (go.dev/issue/46279).
func TestRlimits(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	own := ownNofile(t)
	if own.Max < 5000 {
		t.Fatalf("the test's hard nofile is %d; the test needs 5000", own.Max)
	}

	spec := sleepSpec(t, u)
	spec.Rlimits = []privdrop.Rlimit{
		{Resource: unix.RLIMIT_NOFILE, Cur: 4321, Max: own.Max - 1},
		{Resource: unix.RLIMIT_CORE, Cur: 0, Max: unix.RLIM_INFINITY},
		{Resource: unix.RLIMIT_NPROC, Cur: 777, Max: 888},
	}
	s, err := launch(t, spec, nil, launchOpts{})
	if err != nil {
		t.Fatalf("AfterStart: %v", err)
	}
	got := procLimits(t, s.cmd.Process.Pid)
	for name, want := range map[string][2]string{
		"Max open files":     {"4321", strconv.FormatUint(own.Max-1, 10)},
		"Max core file size": {"0", "unlimited"},
		"Max processes":      {"777", "888"},
	} {
		if got[name] != want {
			t.Errorf("/proc/PID/limits %q: soft/hard %q, want %q", name, got[name], want)
		}
	}
}

// TestRlimitRaise checks that a hard limit above the supervisor's is set
// by the helper while it is root: with CAP_SYS_RESOURCE (which root
// normally has) the command gets it; in a sandbox whose bounding set
// lacks it, the launch fails with EPERM and the command never runs.
func TestRlimitRaise(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	own := ownNofile(t)
	nrOpen := uint64(sysctl(t, "fs/nr_open"))
	if own.Max >= nrOpen {
		t.Fatalf("the test's hard nofile is already fs.nr_open (%d); nothing to raise", nrOpen)
	}
	spec := sleepSpec(t, u)
	spec.Rlimits = []privdrop.Rlimit{{Resource: unix.RLIMIT_NOFILE, Cur: 1234, Max: nrOpen}}

	if !haveCap(t, unix.CAP_SYS_RESOURCE) {
		t.Logf("no CAP_SYS_RESOURCE in this sandbox: the raise must fail")
		s, err := launch(t, spec, nil, launchOpts{})
		want := "setrlimit RLIMIT_NOFILE: operation not permitted"
		if err == nil || err.Error() != want || !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("AfterStart: %v, want %q", err, want)
		}
		if out := drain(t, s.stdout); out != "" {
			t.Errorf("the command ran: %q", out)
		}
		return
	}
	s, err := launch(t, spec, nil, launchOpts{})
	if err != nil {
		t.Fatalf("AfterStart: %v", err)
	}
	want := [2]string{"1234", strconv.FormatUint(nrOpen, 10)}
	if got := procLimits(t, s.cmd.Process.Pid)["Max open files"]; got != want {
		t.Errorf("/proc/PID/limits nofile: soft/hard %q, want %q", got, want)
	}
}

// sleepSpec runs /bin/sleep as user u; AfterStart returns once it has
// been exec'd, so its limits are final.
func sleepSpec(t *testing.T, u testutil.User) *privdrop.Spec {
	t.Helper()
	return &privdrop.Spec{
		Path: "/bin/sleep", Args: []string{"sleep", "3600"},
		Env: []string{"PATH=/usr/bin:/bin"}, Dir: "/", UID: u.UID, GID: u.GID, Umask: 0o022,
	}
}

func ownNofile(t *testing.T) unix.Rlimit {
	t.Helper()
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

// haveCap reports whether capability c is in this thread's effective set.
func haveCap(t *testing.T, c uint) bool {
	t.Helper()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	return data[c/32].Effective&(1<<(c%32)) != 0
}

// TestT12AmbientCaps checks that the command holds exactly the granted
// capabilities in all four sets, runs as its user with no_new_privs, and
// can use them: CAP_NET_BIND_SERVICE lets it bind a port below
// ip_unprivileged_port_start, and without it the bind fails with EACCES.
// The supervisor side forks with CAP_NET_BIND_SERVICE inheritable and
// ambient in some rows, so that "exactly" is tested against a stray cap.
func TestT12AmbientCaps(t *testing.T) {
	u := testutil.EnsureUser(t, "udsv-a")
	addr := privilegedAddr(t)
	lastCap := sysctl(t, "kernel/cap_last_cap")

	for _, tc := range []struct {
		name    string
		caps    []uintptr
		inherit bool // the forking thread holds CAP_NET_BIND_SERVICE
		bind    string
	}{
		{"net_bind_service", []uintptr{unix.CAP_NET_BIND_SERVICE}, false, "ok"},
		{"net_bind_service, inherited too", []uintptr{unix.CAP_NET_BIND_SERVICE}, true, "ok"},
		{"second capability word", []uintptr{unix.CAP_NET_BIND_SERVICE, unix.CAP_CHECKPOINT_RESTORE}, false, "ok"},
		{"another capability only", []uintptr{unix.CAP_NET_RAW}, true, syscall.EACCES.Error()},
		{"none", nil, true, syscall.EACCES.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mask uint64
			for _, c := range tc.caps {
				if int(c) > lastCap {
					testutil.Unavailable(t, "capability %d is past this kernel's last (%d)", c, lastCap)
				}
				mask |= 1 << c
			}
			spec := probeSpec(t, u, 0, "")
			spec.Args = append(spec.Args, "bind="+addr)
			spec.AmbientCaps = tc.caps
			s, rep := mustStart(t, spec, nil, launchOpts{inheritCaps: tc.inherit})
			st := status(t, s.cmd.Process.Pid)

			want := fmt.Sprintf("%016x", mask)
			for _, k := range []string{"CapAmb", "CapPrm", "CapEff", "CapInh"} {
				if st[k] != want {
					t.Errorf("%s: %s, want %s", k, st[k], want)
				}
			}
			if st["NoNewPrivs"] != "1" {
				t.Errorf("NoNewPrivs: %q, want 1", st["NoNewPrivs"])
			}
			wantUID := strings.TrimSpace(strings.Repeat(strconv.Itoa(int(u.UID))+"\t", 4))
			if st["Uid"] != wantUID {
				t.Errorf("Uid: %q, want %q", st["Uid"], wantUID)
			}
			if rep.Bind != tc.bind {
				t.Errorf("bind %s as uid %d: %q, want %q", addr, u.UID, rep.Bind, tc.bind)
			}
		})
	}
}

// privilegedAddr returns 127.0.0.1:PORT for a port below
// ip_unprivileged_port_start that nothing is bound to right now.
func privilegedAddr(t *testing.T) string {
	t.Helper()
	start := sysctl(t, "net/ipv4/ip_unprivileged_port_start")
	if start <= 1 {
		testutil.Unavailable(t, "net.ipv4.ip_unprivileged_port_start is %d: no port is privileged", start)
	}
	for port := start - 1; port > 0; port-- {
		addr := "127.0.0.1:" + strconv.Itoa(port)
		if l, err := net.Listen("tcp4", addr); err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatalf("no free port below %d on 127.0.0.1", start)
	return ""
}

// sysctl reads the integer at /proc/sys/name.
func sysctl(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("/proc/sys/%s: %v", name, err)
	}
	return n
}

// procLimits reads /proc/PID/limits as name -> {soft, hard}, cutting the
// columns where the header puts them (names hold spaces).
func procLimits(t *testing.T, pid int) map[string][2]string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		t.Fatalf("/proc/%d/limits is empty", pid)
	}
	header := sc.Text()
	soft, hard, units := strings.Index(header, "Soft Limit"), strings.Index(header, "Hard Limit"), strings.Index(header, "Units")
	if soft < 0 || hard < 0 || units < 0 {
		t.Fatalf("/proc/%d/limits header %q", pid, header)
	}
	m := map[string][2]string{}
	for sc.Scan() {
		line := sc.Text()
		if len(line) < units {
			continue
		}
		m[strings.TrimSpace(line[:soft])] = [2]string{strings.TrimSpace(line[soft:hard]), strings.TrimSpace(line[hard:units])}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}
