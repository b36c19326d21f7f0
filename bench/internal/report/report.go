// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package report holds what every part of the benchmark shares: the run's
// environment (which supervisors were found, where the binaries are) and
// the table of figures it prints.
package report

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// The supervisors the benchmark knows, in the order of the table.
const (
	Udsvisor    = "udsvisor"
	Supervisord = "supervisord"
	S6          = "s6"
	Runit       = "runit"
)

// Env is one run of the benchmark.
type Env struct {
	// Udsvisor is the udsvisor binary built from this tree.
	Udsvisor string
	// Backend is the benchmark's HTTP backend (bench/backend), built
	// into a directory every user can read; TestApp the integration
	// tests' app, which can warm up, say READY=1 and stop gracefully.
	Backend, TestApp string
	// Peers are the supervisors found on this machine, Udsvisor first.
	Peers []string
	// Dir is a scratch directory (0755, root-owned) removed at the end;
	// each part makes its own subdirectory.
	Dir string
	// Sizes are the service counts of the scale figures (10, 100, 1000).
	Sizes []int
	// Quick shrinks every loop for a smoke run (seconds, not minutes).
	Quick bool
	// Log receives progress lines, so a long run shows where it is.
	Log io.Writer
}

// Has reports whether peer was found.
func (e *Env) Has(peer string) bool { return slices.Contains(e.Peers, peer) }

// Logf prints one progress line.
func (e *Env) Logf(format string, args ...any) {
	fmt.Fprintf(e.Log, "bench: "+format+"\n", args...)
}

// Figure is one line of the table: the same measurement for every peer.
type Figure struct {
	// Name labels the row, e.g. "kill storm, default config: failed of
	// 4000". It may hold the run's settings (the storm sends 4,000
	// requests at its rate and length) but nothing measured, so that
	// tables of runs with the same flags diff row by row; a measured
	// total goes in a Result's Note.
	Name   string
	Unit   string // "ms", "MiB", "" for a count
	Target string // udsvisor's target, e.g. "≤ 50 ms"; "" when none
	// Results by peer; a peer that was not measured is absent.
	Results map[string]Result
}

// Result is one peer's samples for a figure.
type Result struct {
	Samples []float64
	// Note qualifies the samples ("refused", "ends failed", a measured
	// total such as "of 51234"), or says why there are none ("not
	// supported").
	Note string
}

// Median, Min and Max of the samples; NaN when there are none.
func (r Result) Median() float64 {
	if len(r.Samples) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(r.Samples))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// Min is the smallest sample; NaN when there are none.
func (r Result) Min() float64 {
	if len(r.Samples) == 0 {
		return math.NaN()
	}
	return slices.Min(r.Samples)
}

// Max is the largest sample; NaN when there are none.
func (r Result) Max() float64 {
	if len(r.Samples) == 0 {
		return math.NaN()
	}
	return slices.Max(r.Samples)
}

// Print writes the table: one row per figure, one column per peer with
// the median, the min–max when there are several samples, and the ratio
// of the peer's median to udsvisor's.
func Print(w io.Writer, peers []string, figs []Figure) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "figure\t%s\ttarget\n", strings.Join(peers, "\t"))
	for _, f := range figs {
		cells := make([]string, len(peers))
		base := f.Results[Udsvisor].Median()
		for i, p := range peers {
			cells[i] = cell(f.Results[p], base, p == Udsvisor)
		}
		name := f.Name
		if f.Unit != "" {
			name += " (" + f.Unit + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, strings.Join(cells, "\t"), f.Target)
	}
	return tw.Flush()
}

// cell is one peer's entry in a row: the median, the min–max, the ratio
// to base (udsvisor's median) unless isBase, and the note.
func cell(r Result, base float64, isBase bool) string {
	if len(r.Samples) == 0 {
		if r.Note == "" {
			return "-"
		}
		return r.Note
	}
	s := num(r.Median())
	if len(r.Samples) > 1 && r.Min() != r.Max() {
		s += " [" + num(r.Min()) + "–" + num(r.Max()) + "]"
	}
	if !isBase {
		s += ratio(r.Median(), base)
	}
	if r.Note != "" {
		s += " " + r.Note
	}
	return s
}

// ratio is " ×R", v's ratio to udsvisor's base with two significant
// digits and never an exponent ("×1200", "×2.8", "×0.51"), or "" when
// either is not a positive number. A zero on either side (no failed
// request, an idle CPU of 0 ms) would print "×0" or "×Inf", which say
// nothing about how far apart the two are: both values are in the row
// already, so the cell keeps them and drops the ratio. Negative values
// and NaN (no samples) get none either.
func ratio(v, base float64) string {
	if !(v > 0 && base > 0) || math.IsInf(v, 0) || math.IsInf(base, 0) {
		return ""
	}
	return " ×" + sig2(v/base)
}

// sig2 prints v with two significant digits in plain decimal notation:
// %.2g rounds it, and the rounded value is printed back without the
// exponent %g would use from 1e+02 up or below 1e-04.
func sig2(v float64) string {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 2, 64), 64)
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// num prints a figure with the precision it deserves: no decimals for
// whole numbers and from 100 up, one from 10, two below, and two
// significant digits below 0.01, where two decimals would print "0.00".
func num(v float64) string {
	switch a := math.Abs(v); {
	case a == math.Trunc(a) || a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 0.01:
		return fmt.Sprintf("%.2f", v)
	default:
		return sig2(v)
	}
}
