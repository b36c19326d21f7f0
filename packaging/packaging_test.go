// Package packaging holds the service-manager files of udsvisor (systemd
// unit, Debian package build, FreeBSD rc.d script) and the tests that
// build and check them.
package packaging

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The rc.d script is valid sh and runs udsvisor up under daemon(8).
func TestFreeBSDRcScript(t *testing.T) {
	b, err := os.ReadFile("freebsd/udsvisor")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", "-n", "freebsd/udsvisor").CombinedOutput(); err != nil {
		t.Fatalf("sh -n: %v\n%s", err, out)
	}
	for _, want := range []string{"PROVIDE: udsvisor", "up -c ${udsvisor_config}", `sig_reload="HUP"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("rc.d script lacks %q", want)
		}
	}
}
