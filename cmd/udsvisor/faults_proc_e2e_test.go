// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

// Process faults against the real binary (SECURITY-NOTES section 6): a
// log flood, and udsvisor as PID 1 of a pid namespace full of orphans.
// The helpers here also serve faults_limits_e2e_test.go.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/internal/testutil"
)

// startWrapped runs `udsvisor up` on the config in dir as opt says
// (behind prlimit or unshare, its log discarded) and returns a ctlEnv
// for it once udsvisor is up.
func startWrapped(t *testing.T, dir string, opt testutil.UpOptions) *ctlEnv {
	t.Helper()
	e := &ctlEnv{dir: dir, cfg: filepath.Join(dir, "services.toml"), sock: filepath.Join(dir, "ctl", "control.sock")}
	opt.Notify = true
	e.up = testutil.StartUp(t, udsvisorBin, e.cfg, opt)
	// READY=1, not the log line: a flood test discards the log.
	e.up.WaitReady(t)
	return e
}

// procStat returns the fields of /proc/PID/stat after the command name:
// [0] is the state, [11] utime and [12] stime.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
}

// cpuTime is the user plus system time pid has used.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	f, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// children returns the children of every thread of pid.
func children(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var pids []int
	for _, task := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				pids = append(pids, c)
			}
		}
	}
	return pids
}

// apiGet GETs path from the control API at sock.
func apiGet(ctx context.Context, sock, path string) ([]byte, error) {
	client := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://udsvisor"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", path, resp.Status, b.Bytes())
	}
	return b.Bytes(), err
}

const floodConfig = `
[supervisor]
control_socket = "$DIR/ctl/control.sock"

[services.web]
command = ["$APP"]
user = "udsv-a"
[[services.web.sockets]]
path = "$DIR/web/web.sock"

[services.lines]
command = ["/usr/bin/yes", "$LINE"]
user = "udsv-b"

[services.zeros]
command = ["/bin/sh", "-c", "exec cat /dev/zero"]
user = "nobody"
`

// Two children write to stdout as fast as they can, one in short lines
// and one without any newline. udsvisor's memory stays bounded: the log
// ring keeps the last 1,000 lines per service, 256 KiB at most, and a
// line is cut every 16 KiB, while a child that writes faster than udsvisor logs is slowed
// down by the full pipe (backpressure; nothing is dropped). The control
// API keeps answering and the other service keeps serving.
func TestFaultLogFlood(t *testing.T) {
	testutil.EnsureUser(t, "udsv-a")
	testutil.EnsureUser(t, "udsv-b")
	dir := testutil.RunDir(t)
	line := strings.Repeat("a", 100)
	writeFaultConfig(t, dir, strings.ReplaceAll(floodConfig, "$LINE", line))
	// udsvisor logs every line on stderr: gigabytes that the test must
	// not keep.
	e := startWrapped(t, dir, testutil.UpOptions{DiscardLog: true})
	pid := e.up.Pid()
	cpu0 := cpuTime(t, pid)

	maxRSS := 0
	sampleRSS := func() {
		st, err := testutil.ProcStatus(pid)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := strconv.Atoi(strings.TrimSuffix(st["VmRSS"], " kB"))
		maxRSS = max(maxRSS, kb)
	}
	var slowest time.Duration
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); {
		sampleRSS()
		begin := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := apiGet(ctx, e.sock, "/v1/services")
		cancel()
		if err != nil {
			t.Fatalf("control API during the flood: %v", err)
		}
		slowest = max(slowest, time.Since(begin))
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("udsvisor: CPU %v in 4s, slowest status %v", cpuTime(t, pid)-cpu0, slowest)
	if _, err := get(filepath.Join(dir, "web", "web.sock")); err != nil {
		t.Errorf("web during the flood: %v", err)
	}
	for name, check := range map[string]func(string) bool{
		"lines": func(l string) bool { return l == line },
		"zeros": func(l string) bool { return len(l) == 16<<10 && strings.Trim(l, "\x00") == "" },
	} {
		text := 0 // bytes of the lines kept
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		begin := time.Now()
		b, err := apiGet(ctx, e.sock, "/v1/services/"+name+"/logs?lines=1000")
		t.Logf("%s logs: %d bytes in %v", name, len(b), time.Since(begin))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l api.LogLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("%s logs: %v", name, err)
			}
			text += len(l.Line)
			if n++; !check(l.Line) {
				t.Errorf("%s logs: line of %d bytes %.40q...", name, len(l.Line), l.Line)
				break
			}
		}
		switch {
		case name == "lines" && n != 1000:
			t.Errorf("%s logs: %d lines kept, want 1000", name, n)
		case name == "zeros" && (text > 256<<10 || text < 256<<10-2*16<<10):
			// 1,000 lines of 16 KiB would be 16 MiB a service.
			t.Errorf("%s logs: %d lines, %d bytes kept, want 256 KiB at most and nearly so", name, n, text)
		}
		sampleRSS()
	}
	t.Logf("udsvisor: max VmRSS %d MiB", maxRSS>>10)
	if maxRSS > 100<<10 {
		t.Errorf("udsvisor's VmRSS reached %d MiB under a log flood, want under 100 MiB", maxRSS>>10)
	}
}

// orphanConfig's service leaves 100 orphans, sleeps that outlive their
// parents and are reparented to udsvisor.
const orphanConfig = `
[supervisor]
control_socket = "$DIR/ctl/control.sock"

[services.orphans]
command = ["/bin/sh", "-c", "for i in $(seq 100); do (sleep 1 &); done; exec sleep 1000"]
user = "nobody"
`

// udsvisor as PID 1 of a pid namespace (unshare -fp, as in a container)
// reaps the 100 orphans a service leaves: once they have exited, its only
// child is the service, no zombie is left and no wait reported ECHILD.
// SIGTERM from outside still stops it with status 0.
func TestFaultPID1(t *testing.T) {
	testutil.RequireRoot(t)
	unshare := testutil.RequireCommand(t, "unshare")
	dir := testutil.RunDir(t)
	writeFaultConfig(t, dir, orphanConfig)
	e := startWrapped(t, dir, testutil.UpOptions{Wrap: []string{unshare, "-fp", "--mount-proc", "--kill-child"}})
	pid := childOf(e.up.Pid(), "udsvisor")
	st, err := testutil.ProcStatus(pid)
	if err != nil || !strings.HasSuffix(st["NSpid"], "\t1") {
		t.Fatalf("udsvisor pid %d has NSpid %q (%v), want it to be 1 in its namespace", pid, st["NSpid"], err)
	}

	most := 0
	// A poll: udsvisor logs nothing when it reaps an orphan, and only
	// /proc counts its children.
	testutil.Eventually(t, 20*time.Second, func() error {
		kids := children(pid)
		most = max(most, len(kids))
		if most < 50 {
			return fmt.Errorf("udsvisor has %d children; the orphans have not been reparented yet", len(kids))
		}
		var zombies []int
		for _, k := range kids {
			if f, err := procStat(k); err == nil && f[0] == "Z" {
				zombies = append(zombies, k)
			}
		}
		if len(kids) != 1 || len(zombies) > 0 {
			return fmt.Errorf("udsvisor has %d children, zombies %v", len(kids), zombies)
		}
		return nil
	})
	t.Logf("udsvisor had up to %d children at once", most)
	svcs, err := e.services(t)
	if err != nil || svcs[0].Pid == 0 {
		t.Fatalf("orphans service: %+v %v", svcs, err)
	}

	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := e.up.Wait(t); err != nil {
		t.Errorf("udsvisor as PID 1 exited with %v after SIGTERM, want status 0", err)
	}
	if log := e.up.Log(); strings.Contains(log, "no child processes") {
		t.Errorf("a wait failed with ECHILD:\n%s", log)
	}
}
