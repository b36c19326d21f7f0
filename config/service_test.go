// SPDX-License-Identifier: Apache-2.0

package config

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestValidServiceName pins the rule that the control API shares with the
// config file.
func TestValidServiceName(t *testing.T) {
	for name, want := range map[string]bool{
		"web": true, "a.b_c@d-1": true, "all": true, strings.Repeat("a", 64): true,
		"": false, ".": false, "..": false, "...": true, strings.Repeat("a", 65): false,
		"a/b": false, "a b": false, "web\x00": false, "é": false,
	} {
		if got := ValidServiceName(name); got != want {
			t.Errorf("ValidServiceName(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestParseSignal pins the forms the control API's signal endpoint takes
// and its error text; stop_signal's numbers are TestSignals'.
func TestParseSignal(t *testing.T) {
	for in, want := range map[string]unix.Signal{
		"HUP": unix.SIGHUP, "sigusr1": unix.SIGUSR1, "SIGTERM": unix.SIGTERM, "SigQuit": unix.SIGQUIT,
	} {
		if got, err := ParseSignal(in); got != want || err != nil {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "SIG", "NOPE", "9", "SIGRTMIN", "SIGSIGHUP"} {
		got, err := ParseSignal(in)
		if want := `unknown signal "` + in + `"`; got != 0 || err == nil || err.Error() != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want error %s", in, got, err, want)
		}
	}
}
