// SPDX-License-Identifier: Apache-2.0

package config

import (
	"strconv"
	"strings"
)

// Full keys name one value in messages and in the line locator, e.g.
// services.api.sockets[1].mode. A segment that is not a bare TOML key is
// quoted (services."my.svc".user) so that the string stays unambiguous;
// the decoder and the locator build keys only through these helpers, so
// both sides always agree on the spelling.

// joinKey appends the table key name to parent.
func joinKey(parent, name string) string {
	if !isBareKey(name) {
		name = strconv.Quote(name)
	}
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// indexKey names element i of the array at key.
func indexKey(key string, i int) string {
	return key + "[" + strconv.Itoa(i) + "]"
}

// parentKey strips the last segment (".name" or "[i]") from key, or
// returns "" for a top-level key. Quoted segments may hold dots and
// brackets, so it tracks quotes rather than cutting at the last '.'.
func parentKey(key string) string {
	cut := 0
	inQuote := false
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case inQuote && c == '\\':
			i++ // the escaped byte cannot end the quote
		case c == '"':
			inQuote = !inQuote
		case !inQuote && (c == '.' || c == '['):
			cut = i
		}
	}
	return key[:cut]
}

// isBareKey reports whether s can be written unquoted as a TOML key.
func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isBareKeyByte(s[i]) {
			return false
		}
	}
	return true
}

func isBareKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// unescapeBasic decodes the escapes of a TOML basic string (TOML 1.1,
// which BurntSushi/toml v1.6 accepts, adds \e and \xHH to Go's set). On a
// malformed escape it returns s unchanged: the decoder has accepted the
// file already, so this only matters for keys it would spell differently,
// and those merely lose their line.
func unescapeBasic(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		var n int // hex digits that follow
		switch s[i] {
		case 'b':
			b.WriteByte('\b')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'f':
			b.WriteByte('\f')
		case 'r':
			b.WriteByte('\r')
		case 'e':
			b.WriteByte(0x1b)
		case '"', '\\':
			b.WriteByte(s[i])
		case 'x':
			n = 2
		case 'u':
			n = 4
		case 'U':
			n = 8
		default:
			return s
		}
		if n == 0 {
			continue
		}
		if i+1+n > len(s) {
			return s
		}
		r, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32)
		if err != nil {
			return s
		}
		b.WriteRune(rune(r))
		i += n
	}
	return b.String()
}
