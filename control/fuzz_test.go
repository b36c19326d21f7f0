// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/internal/peercred"
)

// FuzzHandler feeds arbitrary methods, paths, queries and bodies to the
// API as root (the caller allowed the most) and as an outsider. The
// handler must never panic, must answer every error as JSON, and must
// never let an outsider change anything.
func FuzzHandler(f *testing.F) {
	for _, seed := range []struct{ method, target, body string }{
		{"GET", "/v1/services", ""},
		{"GET", "/v1/services/web", ""},
		{"POST", "/v1/services/web/restart", "{}"},
		{"POST", "/v1/services/web/signal", `{"signal":"HUP"}`},
		{"POST", "/v1/services/web/signal", `{"signal":"HUP","x":1}`},
		{"POST", "/v1/services/..%2Fweb/stop", ""},
		{"GET", "/v1/services/web/logs?lines=5", ""},
		{"GET", "/v1/services/web/logs?lines=-1&follow=0", ""},
		{"POST", "/v1/reload", "[]"},
		{"GET", "/metrics", ""},
		{"DELETE", "/v1/services/web", ""},
	} {
		f.Add(seed.method, seed.target, seed.body, true)
		f.Add(seed.method, seed.target, seed.body, false)
	}
	f.Fuzz(func(t *testing.T, method, target, body string, root bool) {
		if _, err := url.ParseRequestURI(target); err != nil || !validMethod(method) ||
			!strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\x00#") {
			return // not something net/http would parse off the wire
		}
		// A follow stream never ends by itself; the fuzzer must not wait.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		fb := newFake()
		srv := New(fb, Options{ControlGID: -1, StatusGID: -1})
		req := httptest.NewRequest(method, target, bytes.NewBufferString(body))
		p := peercred.Creds{UID: 1001, GID: 1001}
		if root {
			p = peercred.Creds{UID: 0}
		}
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req.WithContext(withPeer(ctx, p)))

		if rec.Code >= 400 {
			var e api.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%s %s: %d with a body that is not an api.Error: %q", method, target, rec.Code, rec.Body)
			}
		}
		if !root {
			if rec.Code != http.StatusForbidden {
				t.Fatalf("%s %s as an outsider: %d, want 403", method, target, rec.Code)
			}
			if calls := fb.Calls(); len(calls) != 0 {
				t.Fatalf("%s %s as an outsider reached the backend: %q", method, target, calls)
			}
		}
	})
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c < '!' || c > '~' || strings.ContainsRune(`()<>@,;:\"/[]?={}`, c) {
			return false
		}
	}
	return true
}
