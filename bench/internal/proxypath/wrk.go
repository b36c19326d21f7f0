// SPDX-License-Identifier: Apache-2.0

//go:build linux

package proxypath

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The load: wrk's threads and connections. Two threads match the
// machine's two vCPUs, which wrk, nginx and the backend share; 50
// connections keep every process busy without queueing in the backlog.
const (
	wrkThreads     = 2
	wrkConnections = 50
)

// runWrk runs one wrk measurement of url for dur and parses its output.
// It gives up 15 s past dur: wrk stops on its own at dur (requests still
// open then count as time-outs), so this bounds only a hang.
func runWrk(ctx context.Context, url string, dur time.Duration) (wrkResult, error) {
	wctx, cancel := context.WithTimeout(ctx, dur+15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(wctx, "wrk",
		"-t"+strconv.Itoa(wrkThreads), "-c"+strconv.Itoa(wrkConnections),
		"-d"+strconv.Itoa(int(dur/time.Second))+"s", "--latency", url)
	// Its own group, so that Ctrl-C reaches bench, which cancels ctx and
	// kills wrk here, rather than wrk, which would print a partial run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return wrkResult{}, fmt.Errorf("wrk stopped: %w", context.Cause(ctx))
		}
		return wrkResult{}, fmt.Errorf("wrk %s: %w: %s%s", url, err, stderr.String(), stdout.String())
	}
	res, err := parseWrk(stdout.String())
	if err != nil {
		return wrkResult{}, fmt.Errorf("%w; wrk printed:\n%s", err, stdout.String())
	}
	if res.Requests == 0 {
		return wrkResult{}, fmt.Errorf("wrk %s completed no request; it printed:\n%s", url, stdout.String())
	}
	return res, nil
}

// wrkResult is what one wrk run reports, as far as the figures need it.
type wrkResult struct {
	Requests int64         // completed requests ("N requests in 6.00s")
	RPS      float64       // "Requests/sec:"
	P99      time.Duration // the 99% line of the latency distribution
	// Non2xx counts responses with a status of 400 or more (wrk's "Non-2xx
	// or 3xx responses"; the backend never redirects, so only errors).
	Non2xx int64
	// SocketErrors sums wrk's connect, read, write and timeout errors.
	SocketErrors int64
}

// Errors is every request that did not get the backend's answer: an error
// status (nginx's 502 when the backend cannot be reached) or a socket
// error on wrk's side.
func (r wrkResult) Errors() int64 { return r.Non2xx + r.SocketErrors }

// parseWrk reads the output of `wrk --latency` (wrk 4.x). Requests/sec,
// the request count and the 99% latency must be present; the lines for
// non-2xx responses and socket errors are printed only when there are
// some, so their absence means zero.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveRPS, haveP99, haveRequests bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		fields := strings.Fields(line)
		var err error
		switch {
		case strings.HasPrefix(line, "Requests/sec:") && len(fields) == 2:
			r.RPS, err = strconv.ParseFloat(fields[1], 64)
			haveRPS = err == nil
		case fields != nil && fields[0] == "99%" && len(fields) == 2:
			r.P99, err = parseWrkDuration(fields[1])
			haveP99 = err == nil
		case len(fields) >= 3 && fields[1] == "requests" && fields[2] == "in":
			r.Requests, err = strconv.ParseInt(fields[0], 10, 64)
			haveRequests = err == nil
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:") && len(fields) == 5:
			r.Non2xx, err = strconv.ParseInt(fields[4], 10, 64)
		case strings.HasPrefix(line, "Socket errors:"):
			r.SocketErrors, err = parseSocketErrors(strings.TrimPrefix(line, "Socket errors:"))
		}
		if err != nil {
			return wrkResult{}, fmt.Errorf("wrk output line %q: %w", line, err)
		}
	}
	switch {
	case !haveRPS:
		return wrkResult{}, fmt.Errorf("wrk output has no Requests/sec line")
	case !haveRequests:
		return wrkResult{}, fmt.Errorf("wrk output has no request count")
	case !haveP99:
		return wrkResult{}, fmt.Errorf("wrk output has no 99%% latency (was --latency given?)")
	}
	return r, nil
}

// parseSocketErrors sums " connect 0, read 12, write 0, timeout 3".
func parseSocketErrors(s string) (int64, error) {
	var sum int64
	for _, part := range strings.Split(s, ",") {
		f := strings.Fields(part)
		if len(f) != 2 {
			return 0, fmt.Errorf("socket error count %q is not \"KIND N\"", part)
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("socket error count %q: %w", part, err)
		}
		sum += n
	}
	return sum, nil
}

// wrkUnits are the units wrk prints latencies in.
var wrkUnits = map[string]time.Duration{
	"us": time.Microsecond,
	"ms": time.Millisecond,
	"s":  time.Second,
	"m":  time.Minute,
	"h":  time.Hour,
}

// parseWrkDuration reads a latency as wrk prints it: "655.00us", "2.03ms",
// "1.20s", "1.50m".
func parseWrkDuration(s string) (time.Duration, error) {
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		return 0, fmt.Errorf("latency %q has no unit", s)
	}
	unit, ok := wrkUnits[s[i:]]
	if !ok {
		return 0, fmt.Errorf("latency %q has no unit wrk prints (us, ms, s, m, h)", s)
	}
	v, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, fmt.Errorf("latency %q is not a number of %s", s, s[i:])
	}
	// Rounded to the nanosecond: 8.03 ms is 8030000 ns, not 8029999.
	return time.Duration(math.Round(v * float64(unit))), nil
}
