// SPDX-License-Identifier: Apache-2.0

//go:build linux

package proxypath

import (
	"fmt"
	"strings"
	"time"

	"github.com/udsvisor/udsvisor/bench/internal/report"
)

// figures turns the runs into table rows.
//
// report.Print has one column per supervisor, each with its ratio to
// udsvisor. The TCP backend is not a supervisor (it runs under none), so
// it gets no column: a TCP column would print "×ratio to udsvisor" under
// supervisord's name. Instead every case is a row of its own with only
// the udsvisor column filled (this is udsvisor's deployment: the Unix
// socket is what it offers, TCP 127.0.0.1 what it replaces, and the relay
// what it offers an app that only speaks TCP), and each comparison is a
// row of its own: "Unix ÷ TCP requests/s", with the target, and
// "relay ÷ Unix requests/s", what the relay costs against a backend on
// the socket itself. Their samples are paired per round: the three runs
// of one mode in a round ran within seconds of each other, so the ratio
// cancels the machine's slow drift. The peers' columns stay empty: the
// path from nginx to a socket does not depend on who supervises the
// backend, only on the transport.
func (p *part) figures(results [][]wrkResult) []report.Figure {
	var figs []report.Figure
	udsvisor := func(name, unit, target string, samples []float64) {
		figs = append(figs, report.Figure{Name: name, Unit: unit, Target: target,
			Results: map[string]report.Result{report.Udsvisor: {Samples: samples}}})
	}
	rps := func(i int) []float64 { return collect(results[i], func(r wrkResult) float64 { return r.RPS }) }
	p99 := func(i int) []float64 {
		return collect(results[i], func(r wrkResult) float64 { return float64(r.P99) / float64(time.Millisecond) })
	}
	// ratio is case a's requests/s over case b's, round by round.
	ratio := func(a, b int) []float64 {
		var out []float64
		for r := range results[a] {
			if d := results[b][r].RPS; d > 0 {
				out = append(out, results[a][r].RPS/d)
			}
		}
		return out
	}
	for _, keepalive := range []bool{false, true} {
		unix, tcp, relay := caseIndex(unixSocket, keepalive), caseIndex(tcpLoopback, keepalive), caseIndex(relayed, keepalive)
		uc, tc, rc := p.cases[unix], p.cases[tcp], p.cases[relay]
		udsvisor("nginx → "+uc.String(), "requests/s", "", rps(unix))
		udsvisor("nginx → "+tc.String(), "requests/s", "", rps(tcp))
		udsvisor("nginx → "+rc.String(), "requests/s", "", rps(relay))
		udsvisor("nginx, "+uc.mode()+": Unix ÷ TCP requests/s", "", "≥ 1", ratio(unix, tcp))
		udsvisor("nginx, "+uc.mode()+": relay ÷ Unix requests/s", "", "", ratio(relay, unix))
		udsvisor("nginx → "+uc.String()+": p99", "ms", "", p99(unix))
		udsvisor("nginx → "+tc.String()+": p99", "ms", "", p99(tcp))
		udsvisor("nginx → "+rc.String()+": p99", "ms", "", p99(relay))
	}
	// Every error status and socket error counts, of the requests wrk
	// completed plus those a socket error cut short: wrk's count leaves
	// those out. Target 0: nothing on this path should fail under load.
	var failed, total int64
	for _, runs := range results {
		for _, r := range runs {
			failed += r.Errors()
			total += r.Requests + r.SocketErrors
		}
	}
	// The total differs from run to run, so it goes in the note and the
	// row keeps one name: "0 of 412345".
	note := fmt.Sprintf("of %d", total)
	if s := p.errorSummary(results); s != "" {
		note += " " + s
	}
	figs = append(figs, report.Figure{
		Name:   fmt.Sprintf("nginx → backend, all %d cases: failed requests", len(p.cases)),
		Target: "0",
		Results: map[string]report.Result{report.Udsvisor: {
			Samples: []float64{float64(failed)}, Note: note,
		}},
	})
	return figs
}

// errorSummary names the cases that had failed requests, or is "".
func (p *part) errorSummary(results [][]wrkResult) string {
	var parts []string
	for i, runs := range results {
		var non2xx, sock int64
		for _, r := range runs {
			non2xx += r.Non2xx
			sock += r.SocketErrors
		}
		if non2xx+sock > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d error statuses, %d socket errors", p.cases[i], non2xx, sock))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	s := "(" + strings.Join(parts, "; ") + ")"
	if log := p.nginxErrors(3); log != "" {
		s += "; nginx's error log ends: " + strings.ReplaceAll(strings.TrimSpace(log), "\n", " | ")
	}
	return s
}

func collect(rs []wrkResult, f func(wrkResult) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}
