// SPDX-License-Identifier: Apache-2.0

//go:build linux

package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPU is the processor time of a set of processes, from /proc/PID/stat.
// The kernel counts it in ticks of 10 ms (USER_HZ 100 on Linux), so a
// process's figure moves in 10 ms steps.
type CPU struct {
	// Self is utime+stime of the processes themselves.
	Self time.Duration
	// Children is cutime+cstime: the time of the children they reaped
	// (for a supervisor: the services' processes that ended).
	Children time.Duration
}

// tick is the length of one clock tick in /proc: USER_HZ is 100 on
// every Linux architecture Go runs on.
const tick = 10 * time.Millisecond

// CPUOf sums the CPU time of pids; a pid that is gone counts nothing.
func CPUOf(pids []int) CPU {
	var c CPU
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		f, err := statFields(b)
		if err != nil {
			continue
		}
		c.Self += time.Duration(f[11]+f[12]) * tick // utime, stime
		c.Children += time.Duration(f[13]+f[14]) * tick
	}
	return c
}

// statFields parses the numeric fields of /proc/PID/stat that follow
// the command name, which may itself hold spaces and parentheses: field
// 3 of proc(5) is index 0 here (the state is skipped as 0).
func statFields(b []byte) ([]int64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("no command name in %q", b)
	}
	fs := strings.Fields(string(b[i+1:]))
	if len(fs) < 20 {
		return nil, fmt.Errorf("short stat line %q", b)
	}
	out := make([]int64, len(fs))
	for j, f := range fs[1:] {
		out[j+1], _ = strconv.ParseInt(f, 10, 64)
	}
	return out, nil
}

// PSS sums the proportional set size of pids, in bytes, from
// /proc/PID/smaps_rollup: each shared page counts once across the
// processes sharing it, so the supervisor side's total is what it
// costs the machine.
func PSS(pids []int) (int64, error) {
	var total int64
	for _, pid := range pids {
		kb, err := pssOf(pid)
		if err != nil {
			return 0, err
		}
		total += kb * 1024
	}
	return total, nil
}

func pssOf(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, fmt.Errorf("pss of %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("pss of %d: no Pss line in smaps_rollup", pid)
}
