// SPDX-License-Identifier: Apache-2.0

//go:build linux

package report

import (
	"math"
	"testing"
)

func TestRatio(t *testing.T) {
	for _, c := range []struct {
		v, base float64
		want    string
	}{
		{1234, 1, " ×1200"}, // %.2g gave ×1.2e+03
		{12345, 10, " ×1200"},
		{99.6, 1, " ×100"}, // rounds up into the next decade
		{2.84, 1, " ×2.8"},
		{51.4, 100, " ×0.51"},
		{1, 1, " ×1"},
		{3, 4000, " ×0.00075"}, // %.2g gave ×0.00075; below 1e-4 it used an exponent
		{3, 400000, " ×0.0000075"},
		{0, 5, ""}, // was ×0
		{5, 0, ""}, // would be ×Inf
		{0, 0, ""},
		{5, math.NaN(), ""}, // udsvisor has no samples
		{math.Inf(1), 5, ""},
		{-2, 5, ""},
	} {
		if got := ratio(c.v, c.base); got != c.want {
			t.Errorf("ratio(%v, %v) = %q, want %q", c.v, c.base, got, c.want)
		}
	}
}

func TestNum(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{
		{0, "0"},
		{4000, "4000"},
		{12345678, "12345678"},
		{1234.4, "1234"},
		{123.4, "123"},
		{12.34, "12.3"},
		{2.345, "2.35"},
		{0.5, "0.50"},
		{0.0042, "0.0042"}, // %.2f gave 0.00
		{0.00049, "0.00049"},
		{-0.25, "-0.25"},
	} {
		if got := num(c.v); got != c.want {
			t.Errorf("num(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}

// TestCell checks a cell with a zero on either side of the ratio: the
// values stay, the ratio goes.
func TestCell(t *testing.T) {
	for _, c := range []struct {
		r    Result
		base float64
		want string
	}{
		{Result{Samples: []float64{0}}, 12, "0"},
		{Result{Samples: []float64{7}, Note: "(7 refused)"}, 0, "7 (7 refused)"},
		{Result{Samples: []float64{20, 24, 30}}, 2, "24 [20–30] ×12"},
		{Result{Note: "not supported"}, 2, "not supported"},
		{Result{}, 2, "-"},
	} {
		if got := cell(c.r, c.base, false); got != c.want {
			t.Errorf("cell(%v, base %v) = %q, want %q", c.r, c.base, got, c.want)
		}
	}
}
