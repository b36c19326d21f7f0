// SPDX-License-Identifier: Apache-2.0

package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/internal/idname"
)

// maxErrorBody bounds what is read of an error answer.
const maxErrorBody = 1 << 20

// APIError is an error answer of the control API: the HTTP status and the
// server's api.Error. Callers branch on Status (404: unknown service,
// 409: not in a state that allows the action, 422: broken config on
// reload).
type APIError struct {
	Status  int
	Message string
	// Details lists every problem when there are several, such as one
	// "file:line: key: message" per config error on reload.
	Details []string
}

// Error returns the server's message followed by one detail per line, so
// that every config error of a failed reload reaches the operator.
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
	}
	if len(e.Details) == 0 {
		return msg
	}
	return msg + "\n  " + strings.Join(e.Details, "\n  ")
}

// statusError builds the error for a non-2xx response. A body that is not
// an api.Error (a proxy, a server too old or too new) is kept as text.
func (c *Client) statusError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &APIError{Status: resp.StatusCode}
	var ae api.Error
	if err := json.Unmarshal(body, &ae); err == nil && ae.Error != "" {
		e.Message, e.Details = ae.Error, ae.Details
	} else {
		e.Message = strings.TrimSpace(string(body))
	}
	if e.Status == http.StatusForbidden {
		// The socket's mode let the caller in, its peer credentials did
		// not: say who the server saw, the way EACCES does.
		return &friendlyError{
			msg: fmt.Sprintf("permission denied on %s (you are uid %d): %v", c.socket, c.who.uid, e),
			err: e,
		}
	}
	return e
}

// friendlyError is a failure explained for the operator. It wraps the cause
// (an errno, an *APIError) for errors.Is and errors.As.
type friendlyError struct {
	msg string
	err error
}

func (e *friendlyError) Error() string { return e.msg }
func (e *friendlyError) Unwrap() error { return e.err }

// identity is the caller as the kernel checks it against the socket's
// owner, group and mode.
type identity struct {
	uid  int
	gids []int // effective and supplementary
}

func currentIdentity() identity {
	gids, _ := os.Getgroups()
	return identity{uid: os.Getuid(), gids: append(gids, os.Getegid())}
}

// explainDial turns a failed connect to socket into advice: whether
// udsvisor runs, and for EACCES, which group the caller lacks. waited is
// how long a full backlog was retried.
func explainDial(socket string, err error, who identity, waited time.Duration) error {
	var msg string
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR):
		msg = fmt.Sprintf("no control socket at %s: udsvisor is not running (or -s points elsewhere)", socket)
	case errors.Is(err, syscall.ECONNREFUSED):
		// Nobody listens on the file: udsvisor was killed (SIGKILL leaves
		// its socket behind) or the path is not udsvisor's socket.
		msg = fmt.Sprintf("udsvisor is not running (stale socket %s)", socket)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		msg = fmt.Sprintf("permission denied on %s (%s)", socket, who.explainAccess(socket))
	case errors.Is(err, syscall.EAGAIN):
		// A full backlog fails a Unix connect at once instead of waiting;
		// dialRetry tried again for a while.
		msg = fmt.Sprintf("control socket %s is busy (its connection backlog stayed full for %v); try again", socket, waited)
	default:
		return fmt.Errorf("connect to control socket: %w", err)
	}
	return &friendlyError{msg: msg, err: err}
}

// explainAccess says why who may not connect to socket, as far as a stat
// of the file tells: connect(2) needs write permission on the socket and
// search permission on every directory above it.
func (who identity) explainAccess(socket string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(socket, &st); errors.Is(err, syscall.EACCES) {
		return fmt.Sprintf("you are uid %d and cannot search its directory", who.uid)
	} else if err != nil {
		return fmt.Sprintf("you are uid %d", who.uid)
	}
	group := idname.Group(st.Gid)
	if !slices.Contains(who.gids, int(st.Gid)) {
		return fmt.Sprintf("you are uid %d, not in group %s", who.uid, group)
	}
	return fmt.Sprintf("you are uid %d, in group %s, but the socket's mode is %04o",
		who.uid, group, st.Mode&0o7777)
}
