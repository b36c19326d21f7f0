// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Limit is one resource limit from `limits`, set by the launch helper
// while it is still root (so that the hard limit may exceed udsvisor's
// own) and kept across the exec.
type Limit struct {
	Name     string // as configured: "nofile", "core", ...
	Resource int    // unix.RLIMIT_*
	// Soft and Hard are the limit values; unix.RLIM_INFINITY for
	// "infinity".
	Soft, Hard uint64
}

// limitSyntax is what every malformed limit value is told to look like.
const limitSyntax = `a non-negative integer, "infinity" or [soft, hard]`

// limits reads the `limits` table into s.Limits, sorted by name.
func (c *checker) limits(t table, s *Service) {
	lt, ok := c.subTable(t, "limits")
	if !ok {
		return
	}
	for _, name := range sortedKeys(lt.m) {
		key := lt.sub(name)
		res, known := rlimits[name]
		if !known {
			c.errorf(key, "unknown resource limit; one of %s", strings.Join(sortedKeys(rlimits), ", "))
			continue
		}
		soft, hard, ok := c.limitValue(key, lt.m[name])
		if !ok {
			continue
		}
		if soft > hard {
			c.errorf(key, "soft limit %s is above the hard limit %s", limitString(soft), limitString(hard))
			continue
		}
		// setrlimit(2) refuses a nofile above fs.nr_open with EPERM,
		// even for root; "infinity" included.
		if res == unix.RLIMIT_NOFILE && c.nrOpen > 0 && hard > uint64(c.nrOpen) {
			c.errorf(key, "%s is above fs.nr_open (%d), the kernel's maximum", limitString(hard), c.nrOpen)
			continue
		}
		s.Limits = append(s.Limits, Limit{Name: name, Resource: res, Soft: soft, Hard: hard})
	}
}

// limitValue reads one limit: a single value sets soft and hard, a
// two-element array sets them apart.
func (c *checker) limitValue(key string, v any) (soft, hard uint64, ok bool) {
	arr, isArray := v.([]any)
	if !isArray {
		n, ok := c.limitNumber(key, v)
		return n, n, ok
	}
	if len(arr) != 2 {
		c.errorf(key, "must be %s, not an array of %d", limitSyntax, len(arr))
		return 0, 0, false
	}
	soft, okSoft := c.limitNumber(indexKey(key, 0), arr[0])
	hard, okHard := c.limitNumber(indexKey(key, 1), arr[1])
	return soft, hard, okSoft && okHard
}

// limitNumber reads a non-negative integer or "infinity".
func (c *checker) limitNumber(key string, v any) (uint64, bool) {
	switch v := v.(type) {
	case int64:
		if v >= 0 {
			return uint64(v), true
		}
		c.errorf(key, "%d must be %s", v, limitSyntax)
	case string:
		if v == "infinity" {
			return unix.RLIM_INFINITY, true
		}
		c.errorf(key, "%q must be %s", v, limitSyntax)
	default:
		c.errorf(key, "must be %s, not %s", limitSyntax, typeName(v))
	}
	return 0, false
}

// limitString prints a limit value as it is written in the config.
func limitString(n uint64) string {
	if n == unix.RLIM_INFINITY {
		return "infinity"
	}
	return fmt.Sprint(n)
}

// String is the limit as `check` prints it: name=value or
// name=soft:hard.
func (l Limit) String() string {
	if l.Soft == l.Hard {
		return l.Name + "=" + limitString(l.Soft)
	}
	return l.Name + "=" + limitString(l.Soft) + ":" + limitString(l.Hard)
}
