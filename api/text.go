// SPDX-License-Identifier: Apache-2.0

package api

import (
	"strconv"
	"strings"
	"unicode"
)

// Printable escapes the control characters of a line a service wrote
// (tabs excepted) as Go escapes: "\x1b", "\r", "\a". A line comes from an
// unprivileged service and must not drive the terminal of whoever reads
// it, in `ctl logs` or in udsvisor's own log: escape sequences can
// retitle a terminal, clear it, hide text or, on some terminals, inject
// input (T31).
func Printable(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool { return r != '\t' && unicode.IsControl(r) }
