// SPDX-License-Identifier: Apache-2.0

package config

import (
	"runtime"
	"slices"
	"strings"
)

// ambientCaps reads ambient_capabilities into s.AmbientCaps and
// s.AmbientCapNames, sorted by number. Every grant is a warning: the
// service then holds a piece of root that `check` should show.
func (c *checker) ambientCaps(t table, s *Service) {
	names, ok := c.stringList(t, "ambient_capabilities")
	if !ok {
		return
	}
	key := t.sub("ambient_capabilities")
	if capabilities == nil && len(names) > 0 {
		c.errorf(key, "ambient capabilities are Linux's; not supported on %s", runtime.GOOS)
		return
	}
	if s.User != "" && s.UID == 0 {
		c.errorf(key, "a root service keeps every capability; ambient_capabilities is for unprivileged users")
		return
	}
	seen := map[uintptr]int{}
	for i, name := range names {
		ek := indexKey(key, i)
		bare := strings.TrimPrefix(strings.ToUpper(name), "CAP_")
		n, known := capabilities[bare]
		canonical := "CAP_" + bare
		switch {
		case !known:
			c.errorf(ek, "unknown capability %q", name)
			continue
		case c.capLastCap > 0 && n > uintptr(c.capLastCap):
			c.errorf(ek, "%s is not supported by this kernel (its last capability is %d)", canonical, c.capLastCap)
			continue
		}
		if first, dup := seen[n]; dup {
			c.errorf(ek, "%s is already listed at %s", canonical, indexKey(key, first))
			continue
		}
		seen[n] = i
		if slices.Contains(rootEquivalent, n) {
			c.warnf(ek, "%s is root-equivalent; the service is granted it, and whoever takes over the service can take over the host", canonical)
		} else {
			c.warnf(ek, "%s is granted to the service as an ambient capability", canonical)
		}
		s.AmbientCaps = append(s.AmbientCaps, n)
	}
	slices.Sort(s.AmbientCaps)
	for _, n := range s.AmbientCaps {
		s.AmbientCapNames = append(s.AmbientCapNames, capName(n))
	}
}

// capName is the CAP_ name of capability n.
func capName(n uintptr) string {
	for name, v := range capabilities {
		if v == n {
			return "CAP_" + name
		}
	}
	return ""
}
