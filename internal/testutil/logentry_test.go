// SPDX-License-Identifier: Apache-2.0

//go:build linux

package testutil

import (
	"reflect"
	"testing"
)

// Each of udsvisor's log formats yields the message, level and fields
// that the waits match on.
func TestParseEntry(t *testing.T) {
	for _, tt := range []struct {
		line, level, msg string
		fields           map[string]any
	}{
		{"2026-01-02T03:04:05.678Z\tINFO\tstate\t{\"service\": \"web\", \"from\": \"starting\", \"to\": \"running\", \"pid\": 42}",
			"info", "state", map[string]any{"service": "web", "from": "starting", "to": "running", "pid": 42.0}},
		{"2026-01-02T03:04:05.678Z\tINFO\tudsvisor is up\t{\"services\": 2, \"sockets\": 2}",
			"info", "udsvisor is up", map[string]any{"services": 2.0, "sockets": 2.0}},
		// A child's line that looks like fields is still the message.
		{"2026-01-02T03:04:05.678Z\tINFO\t{\"a\":1}\t{\"service\": \"web\", \"pid\": 7, \"stream\": \"stdout\"}",
			"info", `{"a":1}`, map[string]any{"service": "web", "pid": 7.0, "stream": "stdout"}},
		{"2026-01-02T03:04:05.678Z\tINFO\tshutting down", "info", "shutting down", nil},
		{`{"level":"warn","time":"2026-01-02T03:04:05.678Z","msg":"process ended","service":"web","pid":7}`,
			"warn", "process ended", map[string]any{"level": "warn", "time": "2026-01-02T03:04:05.678Z", "msg": "process ended", "service": "web", "pid": 7.0}},
		{"<6>udsvisor is up\t{\"services\": 1, \"sockets\": 0}", "", "udsvisor is up", map[string]any{"services": 1.0, "sockets": 0.0}},
		{"udsvisor: config: no such file", "", "udsvisor: config: no such file", nil},
	} {
		e := parseEntry(tt.line)
		if e.Line != tt.line || e.Level != tt.level || e.Msg != tt.msg || !reflect.DeepEqual(e.fields, tt.fields) {
			t.Errorf("parseEntry(%q) = level %q msg %q fields %v, want %q %q %v", tt.line, e.Level, e.Msg, e.fields, tt.level, tt.msg, tt.fields)
		}
	}
	e := parseEntry("T\tINFO\tstate\t{\"service\": \"web\", \"pid\": 42}")
	if e.Str("service") != "web" || e.Int("pid") != 42 || e.Str("pid") != "" || e.Int("missing") != 0 {
		t.Errorf("Str and Int of %+v", e)
	}
}
