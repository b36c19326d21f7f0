// SPDX-License-Identifier: Apache-2.0

package config

import (
	"sort"
	"strings"
)

// BurntSushi/toml v1.6.0 keeps key positions unexported, and both
// ParseError.LastKey and MetaData drop array indexes, so a message about
// the second [[services.api.sockets]] would point at the wrong block. The
// locator scans the text itself and maps every full key (with indexes, as
// built by joinKey and indexKey) to the line where it is written.
//
// It runs only on text the decoder has accepted, so it needs no error
// reporting; it must still never loop or panic on anything, because the
// fuzz target feeds it whatever the decoder lets through.

// keyLines maps full keys to lines.
type keyLines map[string]keyLine

type keyLine struct {
	line int
	// explicit is false for a table that only appears as a prefix of
	// another header or dotted key; its own [header], written later, wins.
	explicit bool
}

// line returns the line of key, or of its nearest written ancestor when the
// key itself is missing (for "is required" and whole-table problems), or 0.
func (kl keyLines) line(key string) int {
	for key != "" {
		if l, ok := kl[key]; ok {
			return l.line
		}
		key = parentKey(key)
	}
	return 0
}

func (kl keyLines) record(key string, line int, explicit bool) {
	if old, ok := kl[key]; ok && (old.explicit || !explicit) {
		return
	}
	kl[key] = keyLine{line: line, explicit: explicit}
}

// locator is the scanner state.
type locator struct {
	src      string
	pos      int
	newlines []int // offsets of '\n', for line numbers by binary search
	out      keyLines
	// aot counts the elements seen so far of each array of tables, keyed
	// by the array's full key; headers below it refer to the last one.
	aot map[string]int
}

// locate returns the lines of every key written in src.
func locate(src string) keyLines {
	l := &locator{src: src, out: keyLines{}, aot: map[string]int{}}
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			l.newlines = append(l.newlines, i)
		}
	}
	table := ""
	for {
		l.skipSpace(true)
		if l.eof() {
			return l.out
		}
		start := l.pos
		if l.peek() == '[' {
			table = l.header()
		} else {
			l.keyValue(table)
		}
		l.skipLine()
		if l.pos == start {
			l.pos++ // unreachable on valid TOML; guarantees progress
		}
	}
}

func (l *locator) eof() bool { return l.pos >= len(l.src) }

func (l *locator) peek() byte {
	if l.eof() {
		return 0
	}
	return l.src[l.pos]
}

func (l *locator) lineAt(pos int) int {
	return sort.SearchInts(l.newlines, pos) + 1
}

// skipSpace skips blanks and comments, and newlines too when nl is set.
func (l *locator) skipSpace(nl bool) {
	for !l.eof() {
		switch l.src[l.pos] {
		case ' ', '\t', '\r':
			l.pos++
		case '\n':
			if !nl {
				return
			}
			l.pos++
		case '#':
			for !l.eof() && l.src[l.pos] != '\n' {
				l.pos++
			}
		default:
			return
		}
	}
}

// skipLine moves past the end of the current line.
func (l *locator) skipLine() {
	for !l.eof() && l.src[l.pos] != '\n' {
		l.pos++
	}
}

// header reads [a.b] or [[a.b]] and returns the full key of the table it
// opens.
func (l *locator) header() string {
	line := l.lineAt(l.pos)
	l.pos++
	array := l.peek() == '['
	if array {
		l.pos++
	}
	parts := l.key()
	if len(parts) == 0 {
		return ""
	}
	key := ""
	for i, p := range parts {
		key = joinKey(key, p)
		last := i == len(parts)-1
		switch {
		case last && array:
			l.out.record(key, line, false)
			n := l.aot[key]
			l.aot[key] = n + 1
			key = indexKey(key, n)
			l.out.record(key, line, true)
		case last:
			l.out.record(key, line, true)
		default:
			l.out.record(key, line, false)
			if n := l.aot[key]; n > 0 {
				key = indexKey(key, n-1)
			}
		}
	}
	return key
}

// keyValue reads one key = value pair inside table.
func (l *locator) keyValue(table string) {
	line := l.lineAt(l.pos)
	parts := l.key()
	if len(parts) == 0 {
		return
	}
	key := table
	for i, p := range parts {
		key = joinKey(key, p)
		l.out.record(key, line, i == len(parts)-1)
	}
	l.skipSpace(false)
	if l.peek() != '=' {
		return
	}
	l.pos++
	l.skipSpace(false)
	l.value(key)
}

// key reads a possibly dotted key of bare, "basic" and 'literal' parts.
func (l *locator) key() []string {
	var parts []string
	for {
		l.skipSpace(false)
		var p string
		switch c := l.peek(); {
		case c == '"':
			p = unescapeBasic(l.singleLine(true))
		case c == '\'':
			p = l.singleLine(false)
		case isBareKeyByte(c):
			start := l.pos
			for !l.eof() && isBareKeyByte(l.src[l.pos]) {
				l.pos++
			}
			p = l.src[start:l.pos]
		default:
			return parts
		}
		parts = append(parts, p)
		l.skipSpace(false)
		if l.peek() != '.' {
			return parts
		}
		l.pos++
	}
}

// value skips one value, recording the keys inside inline tables and the
// elements of arrays under key.
func (l *locator) value(key string) {
	switch {
	case strings.HasPrefix(l.src[l.pos:], `"""`):
		l.multiline(`"""`, true)
	case strings.HasPrefix(l.src[l.pos:], `'''`):
		l.multiline(`'''`, false)
	case l.peek() == '"':
		l.singleLine(true)
	case l.peek() == '\'':
		l.singleLine(false)
	case l.peek() == '[':
		l.array(key)
	case l.peek() == '{':
		l.inlineTable(key)
	default:
		// Numbers, booleans and datetimes; a datetime may hold a space.
		for !l.eof() && !strings.ContainsRune(",]}#\n", rune(l.src[l.pos])) {
			l.pos++
		}
	}
}

func (l *locator) array(key string) {
	l.list(']', func(i int) {
		elem := indexKey(key, i)
		l.out.record(elem, l.lineAt(l.pos), true)
		l.value(elem)
	})
}

// inlineTable reads { k = v, ... }; TOML 1.1 allows newlines inside.
func (l *locator) inlineTable(key string) {
	l.list('}', func(int) { l.keyValue(key) })
}

// list reads the comma-separated items of an array or inline table from
// its opening bracket to end, newlines and comments allowed between them.
// item reads the i-th item at l.pos.
func (l *locator) list(end byte, item func(i int)) {
	l.pos++ // the opening bracket
	for i := 0; ; i++ {
		l.skipSpace(true)
		if l.eof() {
			return
		}
		if l.peek() == end {
			l.pos++
			return
		}
		start := l.pos
		item(i)
		l.skipSpace(true)
		if l.peek() == ',' {
			l.pos++
		} else if l.pos == start {
			l.pos++ // not an item: skip a byte rather than spin
		}
	}
}

// singleLine reads a one-line string, "..." (escapes true: a backslash
// escapes the next byte) or '...', and returns the raw text between the
// quotes. A string cut off by a newline or the end ends there.
func (l *locator) singleLine(escapes bool) string {
	quote := l.src[l.pos]
	l.pos++
	start := l.pos
	for !l.eof() {
		switch c := l.src[l.pos]; {
		case escapes && c == '\\':
			l.pos = min(l.pos+2, len(l.src))
			continue
		case c == quote:
			s := l.src[start:l.pos]
			l.pos++
			return s
		case c == '\n':
			return l.src[start:l.pos]
		}
		l.pos++
	}
	return l.src[start:]
}

// multiline skips a triple-quoted string (basic or literal), whose
// content, lines that look like keys or headers included, must never be
// taken for keys.
func (l *locator) multiline(delim string, escapes bool) {
	l.pos += len(delim)
	for !l.eof() {
		if escapes && l.src[l.pos] == '\\' {
			l.pos = min(l.pos+2, len(l.src))
			continue
		}
		if strings.HasPrefix(l.src[l.pos:], delim) {
			l.pos += len(delim)
			// Up to two more quotes belong to the content: """a""""" ends
			// with the last three.
			for i := 0; i < 2 && !l.eof() && l.src[l.pos] == delim[0]; i++ {
				l.pos++
			}
			return
		}
		l.pos++
	}
}
