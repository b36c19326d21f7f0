// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// Behind a SIGHUP, a queued stop wins and a queued SIGUSR2 is reported,
// never taken for a stop.
func TestPendingStop(t *testing.T) {
	for _, tc := range []struct {
		name        string
		queued      []os.Signal
		want        os.Signal
		wantUpgrade bool
	}{
		{"nothing", nil, unix.SIGHUP, false},
		{"more SIGHUPs", []os.Signal{unix.SIGHUP, unix.SIGHUP}, unix.SIGHUP, false},
		{"SIGUSR2", []os.Signal{unix.SIGUSR2}, unix.SIGHUP, true},
		{"SIGTERM", []os.Signal{unix.SIGHUP, unix.SIGTERM}, unix.SIGTERM, false},
		{"SIGUSR2 then SIGINT", []os.Signal{unix.SIGUSR2, unix.SIGINT}, unix.SIGINT, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sigc := make(chan os.Signal, len(tc.queued))
			for _, s := range tc.queued {
				sigc <- s
			}
			got, upgrade := pendingStop(sigc)
			if got != tc.want || upgrade != tc.wantUpgrade {
				t.Errorf("pendingStop = %v, %v; want %v, %v", got, upgrade, tc.want, tc.wantUpgrade)
			}
		})
	}
}
