// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// checker walks the decoded tree, converts values to their types and
// collects every problem instead of stopping at the first. The tree comes
// from decoding into map[string]any, which cannot fail on types, so type
// errors, unknown keys and range errors all land here with full keys.
type checker struct {
	file  string
	lines keyLines
	errs  Errors
	warns Errors
	// somaxconn is net.core.somaxconn, nrOpen fs.nr_open (the highest
	// nofile limit) and capLastCap kernel.cap_last_cap; each is 0 when
	// unreadable, which skips its check.
	somaxconn  int
	nrOpen     int
	capLastCap int
	// lstats and realPaths remember what one check found on disk: a
	// thousand services share a few programs and directories, whose
	// paths would be walked again for each.
	lstats    map[string]lstatResult
	realPaths map[string]string
}

type lstatResult struct {
	fi  fs.FileInfo
	err error
}

// lstat is os.Lstat, once per path and check.
func (c *checker) lstat(p string) (fs.FileInfo, error) {
	if r, ok := c.lstats[p]; ok {
		return r.fi, r.err
	}
	fi, err := os.Lstat(p)
	if c.lstats == nil {
		c.lstats = make(map[string]lstatResult)
	}
	c.lstats[p] = lstatResult{fi, err}
	return fi, err
}

// realPath is filepath.EvalSymlinks, once per path and check; "" when it
// fails.
func (c *checker) realPath(p string) string {
	if r, ok := c.realPaths[p]; ok {
		return r
	}
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		r = ""
	}
	if c.realPaths == nil {
		c.realPaths = make(map[string]string)
	}
	c.realPaths[p] = r
	return r
}

func (c *checker) errorf(key, format string, args ...any) {
	c.errs = append(c.errs, c.problem(key, format, args...))
}

func (c *checker) warnf(key, format string, args ...any) {
	c.warns = append(c.warns, c.problem(key, format, args...))
}

func (c *checker) problem(key, format string, args ...any) *Error {
	return &Error{File: c.file, Line: c.lines.line(key), Key: key, Msg: fmt.Sprintf(format, args...)}
}

// at is where key is written, for messages that point at another key.
func (c *checker) at(key string) string {
	if l := c.lines.line(key); l > 0 {
		return fmt.Sprintf("%s:%d", c.file, l)
	}
	return c.file
}

// table is a decoded TOML table with its full key.
type table struct {
	key string
	m   map[string]any
}

func (t table) sub(name string) string { return joinKey(t.key, name) }

// get returns the value at name and its key; ok is false when t has no
// such key.
func (t table) get(name string) (v any, key string, ok bool) {
	v, ok = t.m[name]
	return v, t.sub(name), ok
}

// unknown reports every key of t that is not in known, in sorted order so
// that messages on one line come out the same on every run.
func (c *checker) unknown(t table, known ...string) {
	for _, k := range sortedKeys(t.m) {
		if !slices.Contains(known, k) {
			c.errorf(t.sub(k), "unknown key")
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// typeName describes a decoded value for "must be a string, not ..." messages.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	default:
		return "a datetime"
	}
}

// The getters below return ok=false both when the key is absent and when
// it has the wrong type (already reported); callers then keep the default,
// which is harmless because a reported error discards the whole config.

func (c *checker) str(t table, name string) (string, bool) {
	return typed[string](c, t, name, "a string")
}

func (c *checker) boolean(t table, name string) bool {
	b, _ := typed[bool](c, t, name, "true or false")
	return b
}

func (c *checker) integer(t table, name string) (int64, bool) {
	return typed[int64](c, t, name, "an integer")
}

// typed reads the value at name as a T; want says what a T is in the
// message for a value of another type.
func typed[T any](c *checker, t table, name, want string) (T, bool) {
	v, key, ok := t.get(name)
	if !ok {
		var zero T
		return zero, false
	}
	x, ok := v.(T)
	if !ok {
		c.errorf(key, "must be %s, not %s", want, typeName(v))
	}
	return x, ok
}

// id reads a user or group written as a name or a number, in either a
// string or an integer.
func (c *checker) id(key string, v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case int64:
		return strconv.FormatInt(v, 10), true
	}
	c.errorf(key, "must be a name or a numeric id, not %s", typeName(v))
	return "", false
}

// mode reads an octal permission string. example is the default, shown in
// messages. An integer gets its own message: TOML reads 660 as decimal,
// which would silently mean 0o1224.
func (c *checker) mode(t table, name, example string) (fs.FileMode, bool) {
	v, key, ok := t.get(name)
	if !ok {
		return 0, false
	}
	switch v := v.(type) {
	case int64:
		c.errorf(key, "%s must be a string like %q; %d is decimal (octal %o)", name, example, v, v)
		return 0, false
	case string:
		if m, ok := parseOctal(v); ok {
			return m, true
		}
		if m, ok := parseSymbolic(v); ok {
			c.errorf(key, "%q is not an octal mode like %q; write \"%04o\"", v, example, uint32(m))
		} else {
			c.errorf(key, "%q is not an octal mode like %q", v, example)
		}
		return 0, false
	}
	c.errorf(key, "must be a string like %q, not %s", example, typeName(v))
	return 0, false
}

// parseOctal accepts 3 or 4 octal digits ("660", "0660", "4755"). Special
// bits are returned as os.ModeSetuid and friends so that callers can refuse
// them with fs.FileMode methods.
func parseOctal(s string) (fs.FileMode, bool) {
	if len(s) != 3 && len(s) != 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return 0, false
	}
	m := fs.FileMode(n & 0o777)
	if n&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if n&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if n&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m, true
}

// parseSymbolic reads the ls form "rw-rw----" (or "srw-rw----" as ls -l
// prints a socket) only to suggest the octal spelling; it is not accepted
// as a mode, so that one spelling is used everywhere.
func parseSymbolic(s string) (fs.FileMode, bool) {
	if len(s) == 10 && (s[0] == 's' || s[0] == '-') {
		s = s[1:]
	}
	if len(s) != 9 {
		return 0, false
	}
	var m fs.FileMode
	for i := 0; i < 9; i++ {
		want := "rwx"[i%3]
		switch s[i] {
		case want:
			m |= 1 << (8 - i)
		case '-':
		default:
			return 0, false
		}
	}
	return m, true
}

// duration reads a Go duration that must have a unit and be positive.
func (c *checker) duration(t table, name string) (time.Duration, bool) {
	v, key, ok := t.get(name)
	if !ok {
		return 0, false
	}
	switch v := v.(type) {
	case int64, float64:
		c.errorf(key, "%v needs a unit, e.g. \"%vs\"", v, v)
		return 0, false
	case string:
		d, err := time.ParseDuration(v)
		switch {
		case err != nil && isNumber(v):
			c.errorf(key, "%q needs a unit, e.g. \"%ss\"", v, v)
		case err != nil:
			c.errorf(key, "%q is not a duration like \"10s\"", v)
		case d <= 0:
			c.errorf(key, "%q must be positive", v)
		default:
			return d, true
		}
		return 0, false
	}
	c.errorf(key, "must be a duration like \"10s\", not %s", typeName(v))
	return 0, false
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// subTable reads an optional table.
func (c *checker) subTable(t table, name string) (table, bool) {
	v, key, ok := t.get(name)
	if !ok {
		return table{}, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		c.errorf(key, "must be a table, not %s", typeName(v))
	}
	return table{key: key, m: m}, ok
}

// tables reads an array of tables, written either as [[headers]] or as an
// inline array of inline tables.
func (c *checker) tables(t table, name string) []table {
	v, key, ok := t.get(name)
	if !ok {
		return nil
	}
	var elems []any
	switch v := v.(type) {
	case []map[string]any:
		for _, m := range v {
			elems = append(elems, m)
		}
	case []any:
		elems = v
	default:
		c.errorf(key, "must be an array of tables ([[%s]]), not %s", key, typeName(v))
		return nil
	}
	var out []table
	for i, e := range elems {
		m, ok := e.(map[string]any)
		if !ok {
			c.errorf(indexKey(key, i), "must be a table, not %s", typeName(e))
			continue
		}
		out = append(out, table{key: indexKey(key, i), m: m})
	}
	return out
}

// stringList reads an array of strings.
func (c *checker) stringList(t table, name string) ([]string, bool) {
	v, key, ok := t.get(name)
	if !ok {
		return nil, false
	}
	arr, ok := v.([]any)
	if !ok {
		c.errorf(key, "must be an array of strings, not %s", typeName(v))
		return nil, false
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			c.errorf(indexKey(key, i), "must be a string, not %s", typeName(e))
			return nil, false
		}
		out[i] = s
	}
	return out, true
}

// enum reads the string name as one of values; anything else is an error
// that names them all.
func enum[T ~string](c *checker, t table, name string, values ...T) (T, bool) {
	v, ok := c.str(t, name)
	if !ok {
		return "", false
	}
	if slices.Contains(values, T(v)) {
		return T(v), true
	}
	list := string(values[0])
	for i, alt := range values[1:] {
		sep := ", "
		if i == len(values)-2 {
			sep = " or "
		}
		list += sep + string(alt)
	}
	c.errorf(t.sub(name), "%q must be %s", v, list)
	return "", false
}
