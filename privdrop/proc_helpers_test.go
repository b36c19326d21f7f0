// SPDX-License-Identifier: Apache-2.0

//go:build linux

package privdrop_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// status reads /proc/PID/status.
func status(t *testing.T, pid int) map[string]string {
	t.Helper()
	st, err := testutil.ProcStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// procStat holds the /proc/PID/stat fields the session tests need.
type procStat struct{ pgrp, session, ttyNr int }

func readStat(t *testing.T, pid int) procStat {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// comm may hold spaces and parens; the fields start after the last ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	// f[0] state, f[1] ppid, f[2] pgrp, f[3] session, f[4] tty_nr
	var ps procStat
	for i, p := range []*int{&ps.pgrp, &ps.session, &ps.ttyNr} {
		if *p, err = strconv.Atoi(f[2+i]); err != nil {
			t.Fatalf("parse /proc/%d/stat: %v", pid, err)
		}
	}
	return ps
}

// exitCode reaps s and returns its exit status, or -1 if it was killed.
func exitCode(t *testing.T, s *started) int {
	t.Helper()
	err := s.cmd.Wait()
	if err == nil {
		return 0
	}
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatalf("wait: %v", err)
	}
	return ee.ExitCode()
}

// drain reads what is left on rd; a helper that failed never ran the
// probe, so there is nothing.
func drain(t *testing.T, rd io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sysProcAttrUserns puts the helper in a new user namespace where only
// root is mapped, so that the privilege drop can be made to fail.
func sysProcAttrUserns(allowSetgroups bool) func(*exec.Cmd) {
	return func(c *exec.Cmd) {
		c.SysProcAttr.Cloneflags = syscall.CLONE_NEWUSER
		c.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}}
		c.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}}
		c.SysProcAttr.GidMappingsEnableSetgroups = allowSetgroups
	}
}
