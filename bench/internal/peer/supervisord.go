// SPDX-License-Identifier: Apache-2.0

//go:build linux

package peer

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/udsvisor/udsvisor/bench/internal/unixhttp"
)

// supervisord drives `supervisord -n` from a config file of its own,
// with its unix_http_server socket (what supervisorctl talks to) in the
// scratch directory. Programs keep supervisord's defaults (autorestart
// "unexpected", startsecs 1, startretries 3, output logged to files in
// childlogdir). minfds stays at its default, 1024: supervisord only
// raises the soft limit to it, and it inherits a soft limit as high as
// the hard one (see Spawn), which 1,000 programs need. Raising minfds
// instead would make every spawn close that many fds one by one in
// Python, which took start-up at 1,000 from 7 s to 24 s here.
type supervisord struct {
	base
	client *http.Client
}

func (s *supervisord) conf() string { return filepath.Join(s.dir, "supervisord.conf") }
func (s *supervisord) sock() string { return filepath.Join(s.dir, "supervisor.sock") }

// Prepare writes supervisord.conf.
func (s *supervisord) Prepare(services []Service) error {
	if err := s.prepared(services, Bind); err != nil {
		return err
	}
	if err := socketDirs(services, true); err != nil {
		return fmt.Errorf("supervisord: %w", err)
	}
	logs := filepath.Join(s.dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return fmt.Errorf("supervisord: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[unix_http_server]\nfile=%s\nchmod=0700\n\n", s.sock())
	fmt.Fprintf(&b, "[supervisord]\nnodaemon=true\nlogfile=%s\npidfile=%s\nchildlogdir=%s\n\n",
		filepath.Join(s.dir, "supervisord-main.log"), filepath.Join(s.dir, "supervisord.pid"), logs)
	b.WriteString("[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n")
	fmt.Fprintf(&b, "[supervisorctl]\nserverurl=unix://%s\n", s.sock())
	for _, sv := range services {
		// supervisord splits command like a shell; no argument here
		// holds a space or a quote.
		fmt.Fprintf(&b, "\n[program:%s]\ncommand=%s\nuser=%s\n", sv.Name, strings.Join(sv.argv(Bind, s.sleep), " "), User)
	}
	if err := os.WriteFile(s.conf(), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("supervisord: %w", err)
	}
	s.client = unixhttp.Client(s.sock(), 10*time.Second)
	return nil
}

// Launch starts supervisord in the foreground.
func (s *supervisord) Launch(context.Context) error {
	return s.spawn("supervisord", "-n", "-c", s.conf())
}

// WaitRunning also waits for the control socket.
func (s *supervisord) WaitRunning(ctx context.Context, timeout time.Duration) (time.Time, error) {
	return s.waitRunning(ctx, timeout, func() bool {
		_, err := os.Lstat(s.sock())
		return err == nil
	})
}

// Pids is supervisord alone: it forks the programs itself.
func (s *supervisord) Pids() []int { return s.helpers() }

// MainPid asks supervisord's XML-RPC interface.
func (s *supervisord) MainPid(ctx context.Context, name string) (int, error) {
	info, err := s.processInfo(ctx, name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(info["pid"])
}

// State is supervisord's statename: RUNNING, BACKOFF, FATAL, ...
func (s *supervisord) State(ctx context.Context, name string) (string, error) {
	info, err := s.processInfo(ctx, name)
	return info["statename"], err
}

// Status runs `supervisorctl status`, which exits 3 when a program is
// not running: that is an answer, not a failure.
func (s *supervisord) Status(ctx context.Context) error {
	_, err := run(ctx, "supervisorctl", "-c", s.conf(), "status")
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		return nil
	}
	return err
}

// processInfo calls supervisor.getProcessInfo over the unix socket and
// returns the struct's members as strings.
func (s *supervisord) processInfo(ctx context.Context, name string) (map[string]string, error) {
	var body bytes.Buffer
	body.WriteString(`<?xml version="1.0"?><methodCall><methodName>supervisor.getProcessInfo</methodName><params><param><value><string>`)
	if err := xml.EscapeText(&body, []byte(name)); err != nil {
		return nil, err
	}
	body.WriteString(`</string></value></param></params></methodCall>`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://localhost/RPC2", &body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/xml")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("supervisord XML-RPC: %w", err)
	}
	defer resp.Body.Close()
	info, err := parseXMLRPCStruct(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("supervisord XML-RPC getProcessInfo(%s): %w", name, err)
	}
	return info, nil
}
