// SPDX-License-Identifier: Apache-2.0

//go:build linux

package peer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/udsvisor/udsvisor/bench/internal/unixhttp"
)

// Udsvisor drives `udsvisor up`. Its config holds only the keys a
// service needs (command, user, the socket's path) plus the control
// socket's path, so that several instances run side by side: every
// other key keeps its default, as an operator's first config would.
type Udsvisor struct {
	base
	opt    Options
	client *http.Client
}

// ConfigPath is the config file, for `udsvisor proxy nginx -c`.
func (u *Udsvisor) ConfigPath() string { return filepath.Join(u.dir, "udsvisor.toml") }

func (u *Udsvisor) control() string { return filepath.Join(u.dir, "control.sock") }

// Prepare writes the config.
func (u *Udsvisor) Prepare(services []Service) error {
	h := FD3
	if u.opt.SelfBind {
		h = Bind
	}
	if err := u.prepared(services, h); err != nil {
		return err
	}
	if err := socketDirs(services, u.opt.SelfBind); err != nil {
		return fmt.Errorf("udsvisor: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[supervisor]\ncontrol_socket = %s\n", strconv.Quote(u.control()))
	for _, s := range services {
		fmt.Fprintf(&b, "\n[services.%s]\ncommand = [", s.Name)
		for i, a := range s.argv(u.handoff, u.sleep) {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(a))
		}
		fmt.Fprintf(&b, "]\nuser = %q\n", User)
		if s.Socket == "" || u.opt.SelfBind {
			continue
		}
		fmt.Fprintf(&b, "[[services.%s.sockets]]\npath = %s\n", s.Name, strconv.Quote(s.Socket))
		if u.opt.Proxy {
			fmt.Fprintf(&b, "[[services.%s.proxy]]\nlocation = \"/\"\n", s.Name)
		}
	}
	// udsvisor refuses a config others could write.
	if err := os.WriteFile(u.ConfigPath(), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("udsvisor: %w", err)
	}
	u.client = unixhttp.Client(u.control(), 10*time.Second)
	return nil
}

// Launch starts `udsvisor up`.
func (u *Udsvisor) Launch(context.Context) error {
	return u.spawn(u.env.Udsvisor, "up", "-c", u.ConfigPath())
}

// WaitRunning also waits for the control socket, which MainPid needs.
func (u *Udsvisor) WaitRunning(ctx context.Context, timeout time.Duration) (time.Time, error) {
	return u.waitRunning(ctx, timeout, func() bool {
		_, err := os.Lstat(u.control())
		return err == nil
	})
}

// Pids is udsvisor alone: it has no per-service helper (each service's
// process is forked by udsvisor itself).
func (u *Udsvisor) Pids() []int { return u.helpers() }

// service is the part of the control API's service object used here.
type service struct {
	State string `json:"state"`
	Pid   int    `json:"pid"`
}

func (u *Udsvisor) get(ctx context.Context, name string) (service, error) {
	var s service
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://udsvisor/v1/services/"+name, nil)
	if err != nil {
		return s, err
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return s, fmt.Errorf("udsvisor API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("udsvisor API: GET %s: %s", name, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, fmt.Errorf("udsvisor API: GET %s: %w", name, err)
	}
	return s, nil
}

// MainPid asks the control API.
func (u *Udsvisor) MainPid(ctx context.Context, name string) (int, error) {
	s, err := u.get(ctx, name)
	return s.Pid, err
}

// State asks the control API: running, backoff, failed, ...
func (u *Udsvisor) State(ctx context.Context, name string) (string, error) {
	s, err := u.get(ctx, name)
	return s.State, err
}

// Upgrade runs `udsvisor ctl -s SOCK upgrade`: udsvisor re-executes its
// binary in place, keeping every service process.
func (u *Udsvisor) Upgrade(ctx context.Context) error {
	_, err := run(ctx, u.env.Udsvisor, "ctl", "-s", u.control(), "upgrade")
	return err
}

// Status runs `udsvisor ctl -s SOCK status`.
func (u *Udsvisor) Status(ctx context.Context) error {
	_, err := run(ctx, u.env.Udsvisor, "ctl", "-s", u.control(), "status")
	return err
}
