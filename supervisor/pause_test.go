// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
)

// A paused service has no process and keeps its socket: a connection
// made meanwhile waits in the backlog, nothing restarts the service, and
// resume starts a process that serves the waiting request.
func TestPauseHoldsConnectionsUntilResume(t *testing.T) {
	users(t)
	h := start(t, reloadService("web", "", ""))
	ctx := context.Background()
	first := h.waitState("web", Starting).Pid
	if err := h.sup.Pause(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	st := h.status("web")
	if st.State != Paused || st.Pid != 0 || alive(first) {
		t.Fatalf("after pause: %s pid %d, first process alive %v; want paused and no process", st.State, st.Pid, alive(first))
	}
	conn, err := net.Dial("unix", filepath.Join(h.dir, "web.sock"))
	if err != nil {
		t.Fatalf("connect while paused: %v; want it to wait in the backlog", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if st := h.status("web"); st.State != Paused || st.Pid != 0 {
		t.Fatalf("a waiting connection started the paused service: %s pid %d", st.State, st.Pid)
	}
	if err := h.sup.Resume(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the request queued during the pause: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("the request queued during the pause: %s", resp.Status)
	}
	if st := h.status("web"); st.State == Paused || st.Pid == 0 || st.Pid == first {
		t.Errorf("after resume: %s pid %d; want a new process", st.State, st.Pid)
	}
}

// A reload that changes a paused service keeps it paused under the new
// definition; resume then runs the new one. Resume is for a paused
// service only, and stop turns a paused service into a stopped one.
func TestPauseSurvivesReload(t *testing.T) {
	users(t)
	h, file := startFromFile(t, reloadService("web", `environment = { V = "1" }`, ""))
	ctx := context.Background()
	if err := h.sup.Pause(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, file, h.dir, reloadService("web", `environment = { V = "2" }`, ""))
	res, err := h.sup.Reload(ctx)
	if err != nil || !slices.Equal(res.Changed, []string{"web"}) {
		t.Fatalf("reload: %+v, %v", res, err)
	}
	if st := h.status("web"); st.State != Paused || st.Pid != 0 {
		t.Fatalf("after the reload: %s pid %d; want still paused", st.State, st.Pid)
	}
	if err := h.sup.Resume(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	rep, err := getReport(filepath.Join(h.dir, "web.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rep.Env, "V=2") {
		t.Errorf("resumed process environment %v; want the new definition's V=2", rep.Env)
	}

	if err := h.sup.Stop(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := h.sup.Resume(ctx, "web"); !errors.Is(err, ErrNotPaused) {
		t.Errorf("resume of a stopped service: %v; want %v", err, ErrNotPaused)
	}
	if err := h.sup.Pause(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := h.sup.Stop(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if st := h.status("web"); st.State != Stopped {
		t.Errorf("stop of a paused service: %s; want stopped", st.State)
	}
}

// A reload that changes a service an operator stopped leaves it stopped.
func TestStoppedServiceStaysStoppedOnReload(t *testing.T) {
	users(t)
	h, file := startFromFile(t, reloadService("web", `environment = { V = "1" }`, ""))
	ctx := context.Background()
	if err := h.sup.Stop(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, file, h.dir, reloadService("web", `environment = { V = "2" }`, ""))
	if res, err := h.sup.Reload(ctx); err != nil || !slices.Equal(res.Changed, []string{"web"}) {
		t.Fatalf("reload: %+v, %v", res, err)
	}
	if st := h.status("web"); st.State != Stopped || st.Pid != 0 {
		t.Errorf("after the reload: %s pid %d; want still stopped", st.State, st.Pid)
	}
}
