// SPDX-License-Identifier: Apache-2.0

//go:build linux

package scale

import (
	"testing"
	"time"

	"github.com/udsvisor/udsvisor/bench/internal/report"
)

func TestNextSlot(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const period, settle = 1250 * time.Millisecond, 1100 * time.Millisecond
	for _, c := range []struct {
		gap  time.Duration
		want time.Duration // after t0
	}{
		{5 * time.Millisecond, period},       // a fast restart: the next slot
		{150 * time.Millisecond, period},     // 1.25 s is exactly ready
		{151 * time.Millisecond, 2 * period}, // a hair late: one slot more
		{time.Second, 2 * period},            // supervisord, s6: every other slot
		{5 * time.Second, 5 * period},        // 6.1 s: the fifth slot
	} {
		if got := nextSlot(t0, c.gap, period, settle).Sub(t0); got != c.want {
			t.Errorf("gap %v: next slot after %v, want %v", c.gap, got, c.want)
		}
	}
}

func TestFlattenOrdersByMeasure(t *testing.T) {
	var rows [numMeasures][]report.Figure
	for _, size := range []string{"10", "100"} {
		for m := range numMeasures {
			rows[m] = append(rows[m], report.Figure{Name: size})
		}
	}
	got := flatten(rows)
	if len(got) != 2*numMeasures {
		t.Fatalf("%d figures", len(got))
	}
	for i, f := range got {
		if want := []string{"10", "100"}[i%2]; f.Name != want {
			t.Errorf("figure %d is %q, want %q", i, f.Name, want)
		}
	}
}
