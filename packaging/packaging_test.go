// Package packaging holds the service-manager files of udsvisor (systemd
// unit, Debian package build, FreeBSD rc.d script) and the tests that
// build and check them.
package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// The Debian package builds, installs the right files with the right
// modes, never changes the mode of /, and its binary runs.
func TestDebianPackage(t *testing.T) {
	testutil.RequireCommand(t, "dpkg-deb")
	out := t.TempDir()
	b, err := exec.Command("./deb/build.sh", out).CombinedOutput()
	if err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	deb := strings.TrimSpace(string(b))
	list, err := exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"drwxr-xr-x root/root         0 ", // ./ itself: dpkg applies it to /
		"-rwxr-xr-x root/root",            // the binary
		"./usr/bin/udsvisor",
		"./lib/systemd/system/udsvisor.service",
		"./etc/udsvisor/services.toml.example",
	} {
		if !strings.Contains(string(list), want) {
			t.Errorf("package lacks %q:\n%s", want, list)
		}
	}
	if first := strings.SplitN(string(list), "\n", 2)[0]; !strings.HasPrefix(first, "drwxr-xr-x") || !strings.HasSuffix(first, " ./") {
		t.Errorf("the package's ./ entry is %q, want drwxr-xr-x", first)
	}
	root := t.TempDir()
	if b, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, b)
	}
	unit, err := os.ReadFile(filepath.Join(root, "lib/systemd/system/udsvisor.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/udsvisor up -c /etc/udsvisor/services.toml") ||
		strings.Contains(string(unit), "/usr/local/bin") {
		t.Errorf("the packaged unit does not run /usr/bin/udsvisor:\n%s", unit)
	}
	v, err := exec.Command(filepath.Join(root, "usr/bin/udsvisor"), "version").Output()
	if err != nil || !strings.HasPrefix(string(v), "udsvisor ") {
		t.Errorf("packaged binary: %q %v", v, err)
	}
}

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
