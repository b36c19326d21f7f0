// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/supervisor"
)

// logs answers GET /v1/services/{name}/logs?lines=N&follow=1 with one
// api.LogLine JSON object per line. lines (default 0: every line kept)
// picks the backlog; follow then streams new lines, each flushed, until
// the client goes away or the server shuts down.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) error {
	name, err := serviceName(r)
	if err != nil {
		return err
	}
	n, follow, err := logsQuery(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var ch <-chan supervisor.LogLine
	if follow {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		if streams, ok := ctx.Value(streamsKey{}).(context.Context); ok {
			stop := context.AfterFunc(streams, cancel)
			defer stop()
		}
		// Subscribe before reading the backlog, so that no line falls
		// between the two; the overlap is dropped below.
		if ch, err = s.b.Follow(ctx, name); err != nil {
			return err
		}
	}
	backlog, err := s.b.Logs(ctx, name, n)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	// From here on an error can no longer be answered: a write error means
	// the client went away.
	enc := json.NewEncoder(w)
	for _, l := range backlog {
		if enc.Encode(api.LogLine(l)) != nil {
			return nil
		}
	}
	if !follow {
		return nil
	}
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return nil
	}
	caughtUp := len(backlog) == 0
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				return nil
			}
			if !caughtUp {
				if inBacklog(backlog, l) {
					continue
				}
				caughtUp = true
			}
			if enc.Encode(api.LogLine(l)) != nil || rc.Flush() != nil {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// logsQuery parses lines and follow, refusing anything else.
func logsQuery(r *http.Request) (n int, follow bool, err error) {
	q := r.URL.Query()
	for k := range q {
		if k != "lines" && k != "follow" {
			return 0, false, badRequest("unknown query parameter %q (want lines, follow)", k)
		}
	}
	if v := q.Get("lines"); v != "" {
		n, err = strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, false, badRequest("lines=%q is not a non-negative number", v)
		}
	}
	if v := q.Get("follow"); v != "" {
		follow, err = strconv.ParseBool(v)
		if err != nil {
			return 0, false, badRequest("follow=%q is not 0 or 1", v)
		}
	}
	return n, follow, nil
}

// inBacklog reports whether a followed line was already sent with the
// backlog: it is older than the backlog's last line, or as old and equal
// to one of the lines stamped with that time.
func inBacklog(backlog []supervisor.LogLine, l supervisor.LogLine) bool {
	last := backlog[len(backlog)-1].Time
	if l.Time.Before(last) {
		return true
	}
	for i := len(backlog) - 1; i >= 0 && backlog[i].Time.Equal(last); i-- {
		b := backlog[i]
		if b.Time.Equal(l.Time) && b.Pid == l.Pid && b.Stream == l.Stream && b.Line == l.Line {
			return true
		}
	}
	return false
}
