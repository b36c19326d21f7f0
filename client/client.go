// SPDX-License-Identifier: Apache-2.0

// Package client talks to udsvisor's control API (package control) over
// its Unix socket: HTTP/1.1 with the JSON types of
// package api. It is all that `udsvisor ctl` needs; it knows nothing of the
// supervisor's internals.
//
// Root connects through the root-only socket next to the control socket
// (RootSocket), which no other user can reach, so that however many
// users flood the control socket, root's requests are answered (T28). A
// socket whose connection backlog is full is retried for a few seconds.
//
// Errors the server sends back are *APIError. Failures to reach the server
// read as advice to the operator ("udsvisor is not running", "permission
// denied on … (you are uid 1000, not in group udsvisor)") and still wrap
// the errno, so errors.Is(err, syscall.ECONNREFUSED) holds.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/udsvisor/udsvisor/api"
)

// host is the authority in every request URL; the transport ignores it
// and dials the socket, but HTTP/1.1 needs a Host header.
const host = "udsvisor"

// maxBody bounds a JSON answer (one service list, one error); a follow
// stream is read line by line and is not bounded as a whole.
const maxBody = 16 << 20

// Client is a connection pool to one control socket. It is safe for
// concurrent use.
type Client struct {
	socket string
	http   *http.Client
	// who is the caller as an EACCES message describes it, and whether
	// it is root, who dials the root-only socket first; a field so that
	// tests can describe another user.
	who identity
	// busyWait is how long a full backlog is retried (defaultBusyWait).
	busyWait time.Duration
}

// New returns a client of the control socket at socketPath. It does not
// connect: the first request does. Run as root, it connects to the
// root-only socket next to it (RootSocket) when there is one.
func New(socketPath string) *Client {
	c := &Client{socket: socketPath, who: currentIdentity(), busyWait: defaultBusyWait}
	c.http = &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return c.dial(ctx)
			},
			// No overall timeout: stop waits for the service's
			// stop_timeout and logs -f streams until cancelled. Callers
			// bound requests with their context.
		},
	}
	return c
}

// List returns every service, sorted by name.
func (c *Client) List(ctx context.Context) ([]api.Service, error) {
	var out []api.Service
	if err := c.doJSON(ctx, http.MethodGet, "/v1/services", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// ListTable copies the status table of every service (api.WriteTable,
// rendered by udsvisor) to w: what ctl status prints, without the cost
// of the JSON.
func (c *Client) ListTable(ctx context.Context, w io.Writer) error {
	const path = "/v1/services"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+path, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	req.Header.Set("Accept", api.TableType)
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, io.LimitReader(resp.Body, maxBody)); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// Get returns one service.
func (c *Client) Get(ctx context.Context, name string) (api.Service, error) {
	return c.service(ctx, http.MethodGet, name, "", nil)
}

// Start starts name and returns its state after the action.
func (c *Client) Start(ctx context.Context, name string) (api.Service, error) {
	return c.service(ctx, http.MethodPost, name, "/start", nil)
}

// Stop stops name; the answer comes once its process is gone.
func (c *Client) Stop(ctx context.Context, name string) (api.Service, error) {
	return c.service(ctx, http.MethodPost, name, "/stop", nil)
}

// Restart restarts name and returns its state after the action.
func (c *Client) Restart(ctx context.Context, name string) (api.Service, error) {
	return c.service(ctx, http.MethodPost, name, "/restart", nil)
}

// Pause stops name's process and leaves the service paused, its sockets
// bound; the answer comes once the process is gone.
func (c *Client) Pause(ctx context.Context, name string) (api.Service, error) {
	return c.service(ctx, http.MethodPost, name, "/pause", nil)
}

// Resume starts a paused name and returns its state after the action.
func (c *Client) Resume(ctx context.Context, name string) (api.Service, error) {
	return c.service(ctx, http.MethodPost, name, "/resume", nil)
}

// Scale sets the number of name's instances and returns its state after
// the action.
func (c *Client) Scale(ctx context.Context, name string, n int) (api.Service, error) {
	return c.service(ctx, http.MethodPost, name, "/scale", api.ScaleRequest{Instances: n})
}

// Signal sends sig ("HUP", "SIGUSR1") to the process group of name. The
// server parses and checks the signal.
func (c *Client) Signal(ctx context.Context, name, sig string) (api.Service, error) {
	return c.service(ctx, http.MethodPost, name, "/signal", api.SignalRequest{Signal: sig})
}

// Reload asks udsvisor to re-read the config file it was started with. A
// broken config is an *APIError whose Details hold one line per problem.
func (c *Client) Reload(ctx context.Context) (api.ReloadResult, error) {
	var out api.ReloadResult
	err := c.doJSON(ctx, http.MethodPost, "/v1/reload", struct{}{}, &out)
	return out, err
}

// Upgrade asks udsvisor to re-execute the binary now on disk in place
// (POST /v1/upgrade). It returns once udsvisor has checked the new
// binary and begun, with udsvisor's state before; UpgradeStatus then
// tells how it went.
func (c *Client) Upgrade(ctx context.Context) (api.Upgrade, error) {
	var out api.Upgrade
	err := c.doJSON(ctx, http.MethodPost, "/v1/upgrade", struct{}{}, &out)
	return out, err
}

// UpgradeStatus returns the running udsvisor's version, pid and upgrades
// (GET /v1/upgrade).
func (c *Client) UpgradeStatus(ctx context.Context) (api.Upgrade, error) {
	var out api.Upgrade
	err := c.doJSON(ctx, http.MethodGet, "/v1/upgrade", nil, &out)
	return out, err
}

// Metrics returns the Prometheus text exposition of GET /metrics.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.do(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return "", fmt.Errorf("read /metrics: %w", err)
	}
	return string(b), nil
}

// Logs calls fn with the last n lines name wrote (n <= 0: all the server
// keeps), oldest first. With follow it then calls fn with each new line
// until ctx is done, and returns ctx's error. An error from fn stops the
// stream and is returned as is.
func (c *Client) Logs(ctx context.Context, name string, n int, follow bool, fn func(api.LogLine) error) error {
	path, err := servicePath(name, "/logs")
	if err != nil {
		return err
	}
	q := url.Values{}
	q.Set("lines", strconv.Itoa(max(n, 0)))
	if follow {
		q.Set("follow", "1")
	}
	resp, err := c.do(ctx, http.MethodGet, path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// A json.Decoder reads ndjson as a stream of values and does not
	// limit the line length the way a bufio.Scanner would.
	dec := json.NewDecoder(resp.Body)
	for {
		var line api.LogLine
		if err := dec.Decode(&line); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read logs of %s: %w", name, err)
		}
		if err := fn(line); err != nil {
			return err
		}
	}
}

// service does one request on /v1/services/{name}{suffix} that answers
// with an api.Service.
func (c *Client) service(ctx context.Context, method, name, suffix string, body any) (api.Service, error) {
	var out api.Service
	path, err := servicePath(name, suffix)
	if err != nil {
		return out, err
	}
	err = c.doJSON(ctx, method, path, body, &out)
	return out, err
}

// servicePath escapes name so that a name like "../reload" stays one path
// segment; the server still validates it.
func servicePath(name, suffix string) (string, error) {
	if name == "" {
		return "", errors.New("empty service name")
	}
	return "/v1/services/" + url.PathEscape(name) + suffix, nil
}

// doJSON sends body (when not nil) as JSON and decodes the answer into out.
func (c *Client) doJSON(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	resp, err := c.do(ctx, method, path, rd)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// do sends one request and returns a 2xx response; any other status
// becomes an error and the body is closed.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+host+path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req)
}

// send sends req and returns a 2xx response; any other status becomes an
// error and the body is closed.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	method, path := req.Method, req.URL.Path
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, c.statusError(resp)
}

// transportError strips the *url.Error around a dial failure, whose
// message is already complete, and names the request otherwise.
func (c *Client) transportError(method, path string, err error) error {
	var de *friendlyError
	if errors.As(err, &de) {
		return de
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%s %s on %s: %w", method, path, c.socket, err)
}
