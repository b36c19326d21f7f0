// SPDX-License-Identifier: Apache-2.0

//go:build linux

package testutil

import (
	"encoding/json"
	"regexp"
	"strings"
)

// Entry is one line of udsvisor's log, in any of its formats: console
// (TIME\tLEVEL\tMSG\t{FIELDS}), json, or either with the journal's
// "<6>" priority and neither time nor level. A line that is none of
// these (say "udsvisor: …" from main) is all Msg.
type Entry struct {
	Line   string         // as written
	Level  string         // "info", "warn", …; "" in the journal format
	Msg    string         // zap's message: "state", a child's output line
	fields map[string]any // zap's fields, decoded as encoding/json does
}

var journalPriority = regexp.MustCompile(`^<[0-7]>`)

func parseEntry(line string) Entry {
	e := Entry{Line: line}
	rest := journalPriority.ReplaceAllString(line, "")
	if strings.HasPrefix(rest, "{") {
		var m map[string]any
		if json.Unmarshal([]byte(rest), &m) == nil {
			e.fields = m
			e.Msg, _ = m["msg"].(string)
			e.Level, _ = m["level"].(string)
			return e
		}
	}
	// The fields come last. Neither they nor the message hold a raw tab:
	// JSON escapes it and udsvisor escapes the message (api.Printable),
	// so the last "\t{" starts the fields.
	if i := strings.LastIndex(rest, "\t{"); i >= 0 {
		var m map[string]any
		if json.Unmarshal([]byte(rest[i+1:]), &m) == nil {
			e.fields = m
			rest = rest[:i]
		}
	}
	parts := strings.Split(rest, "\t")
	e.Msg = parts[len(parts)-1]
	if len(parts) >= 3 { // time, level, message
		e.Level = strings.ToLower(parts[1])
	}
	return e
}

// Str is the string field key, or "".
func (e Entry) Str(key string) string {
	s, _ := e.fields[key].(string)
	return s
}

// Int is the number field key, or 0.
func (e Entry) Int(key string) int {
	f, _ := e.fields[key].(float64)
	return int(f)
}
