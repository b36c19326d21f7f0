// SPDX-License-Identifier: Apache-2.0

//go:build linux

package supervisor

import (
	"strconv"
	"strings"
	"testing"
)

// The ring keeps the newest lines, oldest first, at most logLines of
// them and logBytes in all, however many come and however long.
func TestLogRingBounds(t *testing.T) {
	r := newLogRing()
	for i := range 2500 {
		r.add(LogLine{Pid: i, Line: "line " + strconv.Itoa(i)})
	}
	got := r.last(0)
	if len(got) != logLines || got[0].Pid != 2500-logLines || got[len(got)-1].Pid != 2499 {
		t.Fatalf("after 2,500 short lines: %d kept, pids %d..%d; want the newest %d", len(got), got[0].Pid, got[len(got)-1].Pid, logLines)
	}
	if tail := r.last(3); len(tail) != 3 || tail[0].Pid != 2497 || tail[2].Pid != 2499 {
		t.Errorf("last(3) = %+v", tail)
	}

	long := strings.Repeat("x", maxLine)
	for i := range 100 {
		r.add(LogLine{Pid: 10000 + i, Line: long})
	}
	got = r.last(0)
	bytes := 0
	for i, l := range got {
		bytes += lineCost(l)
		if l.Pid != 10100-len(got)+i {
			t.Fatalf("line %d of %d is pid %d: not the newest in order", i, len(got), l.Pid)
		}
	}
	if bytes > logBytes || bytes+lineCost(got[0]) <= logBytes {
		t.Errorf("%d long lines kept, %d bytes: want as many as fit in %d", len(got), bytes, logBytes)
	}
	if r.bytes != bytes || r.n != len(got) || len(r.buf) > logLines {
		t.Errorf("ring accounts %d bytes and %d lines (kept %d, %d), in %d slots", r.bytes, r.n, bytes, len(got), len(r.buf))
	}
}
