// SPDX-License-Identifier: Apache-2.0

package config

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestLocate(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want map[string]int
	}{{
		name: "tables and keys",
		src: `
[supervisor]
log_format = "json"

[services.api]
user = "daemon"
`,
		want: map[string]int{
			"supervisor":            2,
			"supervisor.log_format": 3,
			"services":              5,
			"services.api":          5,
			"services.api.user":     6,
		},
	}, {
		name: "bad key in the second array-of-tables element",
		src: `[services.api]
[[services.api.sockets]]
path = "/run/a.sock"
[[services.api.sockets]]
path = "/run/b.sock"
mdoe = "0660"
[[services.api.sockets]]
mode = "0660"
`,
		want: map[string]int{
			"services.api.sockets":         2,
			"services.api.sockets[0]":      2,
			"services.api.sockets[0].path": 3,
			"services.api.sockets[1]":      4,
			"services.api.sockets[1].path": 5,
			"services.api.sockets[1].mdoe": 6,
			"services.api.sockets[2].mode": 8,
		},
	}, {
		name: "array counters are per parent element",
		src: `[[a]]
[[a.b]]
x = 1
[[a.b]]
x = 2
[[a]]
[[a.b]]
x = 3
[a.c]
y = 4
`,
		want: map[string]int{
			"a[0].b[0].x": 3,
			"a[0].b[1].x": 5,
			"a[1]":        6,
			"a[1].b[0]":   7,
			"a[1].b[0].x": 8,
			"a[1].c":      9,
			"a[1].c.y":    10,
		},
	}, {
		name: "quoted and dotted keys",
		src: `[services."my.svc"]
"a.b" = 1
env.PATH = "/bin"
'lit.key' = 2
[ services . 'x@y' ]
"esc\u0041" = 3
`,
		want: map[string]int{
			`services."my.svc"`:           1,
			`services."my.svc"."a.b"`:     2,
			`services."my.svc".env`:       3,
			`services."my.svc".env.PATH`:  3,
			`services."my.svc"."lit.key"`: 4,
			`services."x@y"`:              5,
			`services."x@y".escA`:         6,
		},
	}, {
		name: "inline tables, with newlines (TOML 1.1) and nested",
		src: `[services.api]
environment = { A = "1", B = { C = "x" } }
other = {
  D = "2", # comment
  E = "3"
}
after = 1
`,
		want: map[string]int{
			"services.api.environment":     2,
			"services.api.environment.A":   2,
			"services.api.environment.B.C": 2,
			"services.api.other.D":         4,
			"services.api.other.E":         5,
			"services.api.after":           7,
		},
	}, {
		name: "multi-line strings hide lookalike keys and headers",
		src: `a = """
b = 1
[fake]
\"""
"""
c = '''
d = 2
[[fake2]]
'''
e = """x""""
f = 3
`,
		want: map[string]int{"a": 1, "c": 6, "e": 10, "f": 11},
	}, {
		name: "multi-line arrays, comments and brackets in strings",
		src: `command = [
  "/usr/bin/app", # a comment with = and ]
  "--x=]",
  '#not a comment',
  [1, 2],
]
sockets = [{ path = "/run/a.sock" },
  { path = "/run/b.sock", mode = "0660" }]
g = 1 # h = 2
`,
		want: map[string]int{
			"command":         1,
			"command[0]":      2,
			"command[1]":      3,
			"command[2]":      4,
			"command[3]":      5,
			"command[3][1]":   5,
			"sockets[0].path": 7,
			"sockets[1].path": 8,
			"sockets[1].mode": 8,
			"g":               9,
		},
	}, {
		name: "CRLF, tabs and a datetime with a space",
		src:  "a = 1\r\n\t[t]\r\nwhen = 1979-05-27 07:32:00Z\r\nb = 2\r\n",
		want: map[string]int{"a": 1, "t": 2, "t.when": 3, "t.b": 4},
	}, {
		name: "implicit table then its own header",
		src: `[services.api.environment]
A = "1"
[services.api]
user = "daemon"
`,
		want: map[string]int{
			"services.api":               3,
			"services.api.environment":   1,
			"services.api.environment.A": 2,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := toml.Decode(tt.src, new(map[string]any)); err != nil {
				t.Fatalf("test input is not valid TOML: %v", err)
			}
			got := locate(tt.src)
			for key, line := range tt.want {
				if l, ok := got[key]; !ok || l.line != line {
					t.Errorf("%s: line %d (found %v), want %d", key, l.line, ok, line)
				}
			}
			for key := range got {
				if strings.Contains(key, "fake") || strings.HasPrefix(key, "b") || strings.HasPrefix(key, "d") {
					t.Errorf("string content taken for key %s", key)
				}
			}
			assertAllLocated(t, tt.src)
		})
	}
}

// assertAllLocated checks that every key the decoder sees has a line.
func assertAllLocated(t *testing.T, src string) {
	t.Helper()
	var raw map[string]any
	if _, err := toml.Decode(src, &raw); err != nil {
		return
	}
	lines := locate(src)
	for _, key := range decodedKeys("", raw) {
		if _, ok := lines[key]; !ok {
			t.Errorf("decoded key %s has no line; located: %v", key, slices.Sorted(maps.Keys(lines)))
		}
	}
}

func decodedKeys(prefix string, v any) []string {
	var keys []string
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			key := joinKey(prefix, k)
			keys = append(keys, key)
			keys = append(keys, decodedKeys(key, e)...)
		}
	case []map[string]any:
		for i, e := range v {
			keys = append(keys, indexKey(prefix, i))
			keys = append(keys, decodedKeys(indexKey(prefix, i), e)...)
		}
	case []any:
		for i, e := range v {
			keys = append(keys, indexKey(prefix, i))
			keys = append(keys, decodedKeys(indexKey(prefix, i), e)...)
		}
	}
	return keys
}

func TestParentKey(t *testing.T) {
	for key, want := range map[string]string{
		"services.api.sockets[1].mode": "services.api.sockets[1]",
		"services.api.sockets[1]":      "services.api.sockets",
		`services."my.svc[0]".user`:    `services."my.svc[0]"`,
		`services."my.svc[0]"`:         "services",
		`services."a\".b"`:             "services",
		"services":                     "",
	} {
		if got := parentKey(key); got != want {
			t.Errorf("parentKey(%s) = %s, want %s", key, got, want)
		}
	}
}
