// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// pidsOf returns the pid of each current instance, by index.
func pidsOf(st Status) []int {
	var pids []int
	for _, in := range st.Instances {
		if !in.Leaving {
			pids = append(pids, in.Pid)
		}
	}
	return pids
}

// socketInode is the socket that fd 3 of pid is.
func socketInode(t *testing.T, pid int) string {
	t.Helper()
	fds, err := testutil.ProcFDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range fds {
		if strings.HasPrefix(target, "socket:") {
			return target
		}
	}
	t.Fatalf("pid %d holds no socket: %v", pid, fds)
	return ""
}

// instances = N runs N processes on the same listening socket, each with
// its index in UDSVISOR_INSTANCE and supervised on its own: a killed one
// is restarted alone.
func TestInstancesShareTheSocket(t *testing.T) {
	users(t)
	h := start(t, reloadService("pool", "instances = 3", ""))
	st := h.waitFor("pool", "three processes", func(st Status) bool {
		pids := pidsOf(st)
		return len(pids) == 3 && !slices.Contains(pids, 0)
	})
	pids := pidsOf(st)
	var sock string
	for i, pid := range pids {
		env, err := testutil.ProcEnviron(pid)
		if err != nil {
			t.Fatal(err)
		}
		if want := "UDSVISOR_INSTANCE=" + strconv.Itoa(i); !slices.Contains(env, want) {
			t.Errorf("instance %d (pid %d) lacks %s", i, pid, want)
		}
		if s := socketInode(t, pid); sock == "" {
			sock = s
		} else if s != sock {
			t.Errorf("instance %d holds %s, instance 0 %s; want the same listening socket", i, s, sock)
		}
	}
	if err := unix.Kill(pids[1], unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st = h.waitFor("pool", "instance 1 restarted", func(st Status) bool {
		now := pidsOf(st)
		return len(now) == 3 && now[1] != 0 && now[1] != pids[1]
	})
	if now := pidsOf(st); now[0] != pids[0] || now[2] != pids[2] {
		t.Errorf("after killing instance 1: pids %v, were %v; want only instance 1 replaced", now, pids)
	}
	if st.Instances[1].Restarts != 1 || st.Instances[0].Restarts != 0 || st.Restarts != 1 {
		t.Errorf("restarts: instance 0 %d, 1 %d, service %d; want 0, 1, 1", st.Instances[0].Restarts, st.Instances[1].Restarts, st.Restarts)
	}
}

// ctl scale adds instances at once and stops the highest indexes
// gracefully; the others keep their processes.
func TestScaleUpAndDown(t *testing.T) {
	users(t)
	h := start(t, reloadService("pool", "", ""))
	ctx := context.Background()
	first := h.waitState("pool", Starting).Pid
	if err := h.sup.Scale(ctx, "pool", 3); err != nil {
		t.Fatal(err)
	}
	pids := pidsOf(h.status("pool"))
	if len(pids) != 3 || pids[0] != first || slices.Contains(pids, 0) || h.status("pool").Wanted != 3 {
		t.Fatalf("after scale 3: pids %v, wanted %d; want 3 processes, the first still %d", pids, h.status("pool").Wanted, first)
	}
	if _, err := getReport(filepath.Join(h.dir, "pool.sock")); err != nil {
		t.Fatal(err)
	}
	if err := h.sup.Scale(ctx, "pool", 1); err != nil {
		t.Fatal(err)
	}
	st := h.status("pool")
	if now := pidsOf(st); len(st.Instances) != 1 || !slices.Equal(now, []int{first}) {
		t.Errorf("after scale 1: instances %+v; want the first process alone", st.Instances)
	}
	for _, pid := range pids[1:] {
		if alive(pid) {
			t.Errorf("pid %d of a removed instance is alive", pid)
		}
	}
	if err := h.sup.Scale(ctx, "pool", 0); !errors.Is(err, ErrBadScale) {
		t.Errorf("scale 0: %v; want %v", err, ErrBadScale)
	}
}

// overlapConfig is a notify service that needs delay to become ready,
// restarted with overlap.
func overlapConfig(delay, extra string) string {
	return `
[services.web]
command = ["$APP", "-graceful", "-delay", "` + delay + `", "-notify", "READY=1", "-fail-if", "$DIR/broken"]
user = "udsv-a"
ready = "notify"
restart_mode = "overlap"
` + extra + `
[[services.web.sockets]]
path = "$DIR/web.sock"
`
}

// load sends requests to sock until stop is closed and counts the
// failed ones and the pids that answered.
func load(sock string, stop <-chan struct{}) (failed *atomic.Int64, firstErr *atomic.Value, pids func() []int, done func()) {
	failed = new(atomic.Int64)
	firstErr = new(atomic.Value)
	var mu sync.Mutex
	seen := map[int]bool{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				rep, err := getReport(sock)
				if err != nil {
					if failed.Add(1) == 1 {
						firstErr.Store(err.Error())
					}
					continue
				}
				mu.Lock()
				seen[rep.Pid] = true
				mu.Unlock()
			}
		}()
	}
	return failed, firstErr, func() []int {
			mu.Lock()
			defer mu.Unlock()
			var out []int
			for pid := range seen {
				out = append(out, pid)
			}
			return out
		}, func() {
			wg.Wait()
		}
}

// An overlapping restart starts the new process beside the old one and
// stops the old one only once the new one is ready: under load, no
// request fails and the old process served while the new one warmed up.
func TestOverlapRestartUnderLoad(t *testing.T) {
	users(t)
	h := start(t, overlapConfig("500ms", ""))
	old := h.waitState("web", Running).Pid
	stop := make(chan struct{})
	failed, firstErr, seen, done := load(filepath.Join(h.dir, "web.sock"), stop)
	if err := h.sup.Restart(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	st := h.status("web")
	close(stop)
	done()
	if st.Pid == 0 || st.Pid == old {
		t.Fatalf("after the restart: pid %d (old %d); want a new process", st.Pid, old)
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d requests failed during the overlapping restart, the first with %v", n, firstErr.Load())
	}
	if !slices.Contains(seen(), old) {
		t.Errorf("the old process %d served nothing during the restart (served by %v)", old, seen())
	}
	// The old process finishes what it has and exits; then it is
	// dropped.
	st = h.waitFor("web", "the old process gone", func(st Status) bool { return len(st.Instances) == 1 })
	log := h.logs.String()
	if i, j := strings.Index(log, "the new processes have started; stopping the old ones"), strings.Index(log, fmt.Sprintf(`"pid": %d, "status": "exited with status 0"`, old)); i < 0 || j < 0 || j < i {
		t.Errorf("the old process was not stopped after the new one started (%d, %d):\n%s", i, j, log)
	}
	if st.Restarts != 1 || st.Instances[0].Pid != st.Pid {
		t.Errorf("after the overlap: %+v", st)
	}
}

// A new process that fails to become ready ends the overlapping restart:
// the old one keeps serving, the restart reports the failure, and nothing
// of the new generation is left.
func TestOverlapFailedStartKeepsTheOld(t *testing.T) {
	users(t)
	h := start(t, overlapConfig("0s", ""))
	old := h.waitState("web", Running).Pid
	if err := os.WriteFile(filepath.Join(h.dir, "broken"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := h.sup.Restart(context.Background(), "web")
	if err == nil || !strings.Contains(err.Error(), "the old processes keep serving") {
		t.Fatalf("restart with a broken new process: %v; want a failure that keeps the old", err)
	}
	st := h.status("web")
	if st.State != Running || st.Pid != old || len(st.Instances) != 1 {
		t.Errorf("after the failed restart: %s pid %d, instances %+v; want the old %d alone, running", st.State, st.Pid, st.Instances, old)
	}
	rep, err := getReport(filepath.Join(h.dir, "web.sock"))
	if err != nil || rep.Pid != old {
		t.Errorf("served by %+v, %v; want the old process %d", rep, err, old)
	}
}

// A reload that changes an overlap service starts the new definition
// beside the old one, which serves until the new one is ready: no request
// fails. A new definition that does not start leaves the old one running,
// and the reload says so.
func TestReloadOverlap(t *testing.T) {
	users(t)
	def := func(v, extra string) string {
		return overlapConfig("300ms", `environment = { V = "`+v+`" }`+"\n") + extra
	}
	h, file := startFromFile(t, def("1", ""))
	old := h.waitState("web", Running).Pid
	sock := filepath.Join(h.dir, "web.sock")
	stop := make(chan struct{})
	failed, firstErr, _, done := load(sock, stop)
	writeConfig(t, file, h.dir, def("2", ""))
	res, err := h.sup.Reload(context.Background())
	close(stop)
	done()
	if err != nil || !slices.Equal(res.Changed, []string{"web"}) || len(res.Failed) != 0 {
		t.Fatalf("reload: %+v, %v", res, err)
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d requests failed during the overlapping reload, the first with %v", n, firstErr.Load())
	}
	rep, err := getReport(sock)
	if err != nil || rep.Pid == old || !slices.Contains(rep.Env, "V=2") {
		t.Errorf("after the reload served by %d (old %d) with %v, %v; want the new definition", rep.Pid, old, rep.Env, err)
	}
	if alive(old) {
		t.Errorf("the old process %d outlived the reload", old)
	}

	// A new definition that exits at once.
	cur := rep.Pid
	writeConfig(t, file, h.dir, strings.Replace(def("3", ""), `"-graceful",`, `"-graceful", "-exit", "1",`, 1))
	res, err = h.sup.Reload(context.Background())
	if err != nil || !slices.Equal(res.Failed, []string{"web"}) {
		t.Fatalf("reload of a broken definition: %+v, %v; want web failed", res, err)
	}
	if st := h.status("web"); st.State != Running || st.Pid != cur {
		t.Errorf("after the failed reload: %s pid %d; want the running %d", st.State, st.Pid, cur)
	}
	if rep, err := getReport(sock); err != nil || !slices.Contains(rep.Env, "V=2") {
		t.Errorf("after the failed reload served with %v, %v; want the old definition", rep.Env, err)
	}
	// The file no longer says what web runs (an upgrade refuses so),
	// until a reload whose definition starts.
	if stale := h.sup.Stale(); !slices.Equal(stale, []string{"web"}) {
		t.Errorf("Stale() after the failed reload = %q, want [web]", stale)
	}
	writeConfig(t, file, h.dir, def("4", ""))
	if res, err = h.sup.Reload(context.Background()); err != nil || len(res.Failed) != 0 {
		t.Fatalf("reload of a good definition: %+v, %v", res, err)
	}
	if stale := h.sup.Stale(); len(stale) != 0 {
		t.Errorf("Stale() after a good reload = %q, want none", stale)
	}
}

// Requests that come during an overlapping restart join it: a second
// restart is answered with the first, and scaling up adds processes to
// the new generation; the restart still ends with every process started.
func TestOverlapJoinsRestartAndScale(t *testing.T) {
	users(t)
	h := start(t, overlapConfig("300ms", ""))
	old := h.waitState("web", Running).Pid
	ctx := context.Background()
	errs := make(chan error, 2) // each restart answers once
	go func() { errs <- h.sup.Restart(ctx, "web") }()
	h.waitFor("web", "an overlap in progress", func(st Status) bool { return len(st.Instances) == 2 })
	go func() { errs <- h.sup.Restart(ctx, "web") }()
	if err := h.sup.Scale(ctx, "web", 2); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("restart: %v", err)
		}
	}
	st := h.waitFor("web", "two new processes, the old gone", func(st Status) bool {
		pids := pidsOf(st)
		return len(st.Instances) == 2 && len(pids) == 2 && !slices.Contains(pids, 0)
	})
	if slices.Contains(pidsOf(st), old) {
		t.Errorf("the old process %d is still current: %+v", old, st.Instances)
	}
}

// A failed overlapping restart restores only the processes it replaced:
// the generation an earlier overlap replaced, still finishing its work,
// is dropped once it ends, never made current again.
func TestOverlapFailureRestoresOnlyWhatItReplaced(t *testing.T) {
	users(t)
	// The old processes ignore SIGTERM: they linger until stop_timeout.
	h := start(t, strings.Replace(overlapConfig("0s", `stop_timeout = "2s"`), `"-graceful",`, `"-ignore-term",`, 1))
	h.waitState("web", Running)
	ctx := context.Background()
	if err := h.sup.Restart(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.dir, "broken"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.sup.Restart(ctx, "web"); err == nil {
		t.Fatal("restart with a broken new process succeeded")
	}
	st := h.waitFor("web", "one instance left", func(st Status) bool { return len(st.Instances) == 1 })
	if st.State != Running || st.Instances[0].Leaving || st.Instances[0].Pid == 0 {
		t.Errorf("after the lingering generation ended: %+v", st.Instances)
	}
}

// resume is for a paused service: one that failed is refused.
func TestResumeOfAFailedServiceRefused(t *testing.T) {
	users(t)
	h := start(t, fmt.Sprintf(crashConfig, 1, "always"))
	h.waitState("crash", Failed)
	if err := h.sup.Resume(context.Background(), "crash"); !errors.Is(err, ErrNotPaused) {
		t.Errorf("resume of a failed service: %v; want %v", err, ErrNotPaused)
	}
}

// A stop that comes while a reload overlaps the service stops it for
// good: the old definition is not brought back.
func TestStopDuringReloadOverlap(t *testing.T) {
	users(t)
	def := func(v string) string { return overlapConfig("2s", `environment = { V = "`+v+`" }`+"\n") }
	h, file := startFromFile(t, def("1"))
	old := h.waitState("web", Running).Pid
	writeConfig(t, file, h.dir, def("2"))
	type reloaded struct {
		res ReloadResult
		err error
	}
	done := make(chan reloaded, 1) // the reload answers once
	go func() {
		res, err := h.sup.Reload(context.Background())
		done <- reloaded{res, err}
	}()
	// The new definition is published, starting, beside the old one,
	// which serves meanwhile and shows as leaving.
	st := h.waitFor("web", "the new definition starting beside the old", func(st Status) bool {
		return len(st.Instances) == 2 && st.Instances[0].State == Starting
	})
	if st.State != Running || !st.Instances[1].Leaving || st.Instances[1].Pid != old || st.Instances[0].State != Starting {
		t.Errorf("during the reload's overlap: %s, %+v; want running, the new instance starting and the old %d leaving", st.State, st.Instances, old)
	}
	if err := h.sup.Stop(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || len(r.res.Failed) != 0 {
		t.Fatalf("reload: %+v, %v; want no failure", r.res, r.err)
	}
	if st := h.status("web"); st.State != Stopped || st.Pid != 0 {
		t.Errorf("after the stop: %s pid %d; want stopped", st.State, st.Pid)
	}
	if alive(old) {
		t.Errorf("the old process %d still runs", old)
	}
}

// Without ready = "notify", a process has started once it accepted a
// connection, which udsvisor sees as its sockets' queue draining. During
// an overlap the old processes drain it too, so that says nothing of the
// new one: under load, a new process that exits at once is still a
// failed start, and the old one serves on.
func TestOverlapWithoutNotifyUnderLoad(t *testing.T) {
	users(t)
	cfg := strings.Replace(overlapConfig("0s", ""), "ready = \"notify\"\n", "", 1)
	cfg = strings.Replace(cfg, `"-notify", "READY=1", `, "", 1)
	h := start(t, cfg)
	old := h.waitState("web", Running).Pid
	stop := make(chan struct{})
	failed, firstErr, _, done := load(filepath.Join(h.dir, "web.sock"), stop)
	time.Sleep(100 * time.Millisecond) // the load is on
	if err := os.WriteFile(filepath.Join(h.dir, "broken"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := h.sup.Restart(context.Background(), "web")
	close(stop)
	done()
	if err == nil {
		t.Error("restart to a process that exits at once succeeded under load")
	}
	if st := h.status("web"); st.State != Running || st.Pid != old {
		t.Errorf("after the failed restart: %s pid %d; want the old %d running", st.State, st.Pid, old)
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d requests failed, the first with %v", n, firstErr.Load())
	}
}
