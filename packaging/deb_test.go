// SPDX-License-Identifier: Apache-2.0

//go:build linux

package packaging

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// The Debian package builds, holds the right files with the right modes,
// never changes the mode of /, builds to the same bytes twice, and
// lintian (2.116, Debian 12's) finds no error and no warning in it. Then, as root, it installs with apt-get,
// its binary checks the example config it ships, and a purge leaves
// nothing of it behind: no file, no directory of its own, no group.
func TestDebianPackage(t *testing.T) {
	testutil.RequireCommand(t, "dpkg-deb")
	testutil.RequireCommand(t, "dpkg-shlibdeps")
	out := t.TempDir()
	b, err := exec.Command("./deb/build.sh", out).CombinedOutput()
	if err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	deb := lines[len(lines)-1]
	if !regexp.MustCompile(`/udsvisor_(0~git[0-9]{8}\.[0-9a-f]{12}|[0-9][^_]*)(\+dirty)?-1_[a-z0-9]+\.deb$`).MatchString(deb) {
		t.Errorf("package name %s: want udsvisor_0~gitYYYYMMDD.HASH-1_ARCH.deb or a tag's version", deb)
	}
	list, err := exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"-rwxr-xr-x root/root", // the binary
		"./usr/bin/udsvisor",
		"./lib/systemd/system/udsvisor.service",
		"./usr/share/doc/udsvisor/copyright",
		"./usr/share/doc/udsvisor/changelog.Debian.gz",
		"./usr/share/doc/udsvisor/examples/services.toml.example",
		"./usr/share/man/man8/udsvisor.8.gz",
		"./usr/share/man/man5/services.toml.5.gz",
		"./usr/share/bash-completion/completions/udsvisor",
	} {
		if !strings.Contains(string(list), want) {
			t.Errorf("package lacks %q:\n%s", want, list)
		}
	}
	if strings.Contains(string(list), "./etc/") {
		t.Errorf("package ships files in /etc:\n%s", list)
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

	t.Run("reproducible", func(t *testing.T) {
		// A second build of the same tree gives the same bytes: the
		// version, the changelog's date and every mtime come from the
		// commit, and the Go build is -trimpath.
		again := t.TempDir()
		b, err := exec.Command("./deb/build.sh", again).CombinedOutput()
		if err != nil {
			t.Fatalf("build.sh: %v\n%s", err, b)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		second := lines[len(lines)-1]
		if filepath.Base(second) != filepath.Base(deb) {
			t.Fatalf("second build: %s, first: %s", second, deb)
		}
		if out, err := exec.Command("cmp", deb, second).CombinedOutput(); err != nil {
			t.Errorf("two builds differ: %v %s", err, out)
		}
	})

	t.Run("lintian", func(t *testing.T) {
		testutil.RequireCommand(t, "lintian")
		// --fail-on exits 2 on any error or warning; the E: and W: lines
		// are counted as well, so that a lintian without the flag (or
		// one that ignores it) cannot pass the test.
		b, err := exec.Command("lintian", "--fail-on", "error,warning", deb).CombinedOutput()
		var bad []string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") {
				bad = append(bad, line)
			}
		}
		if err != nil || len(bad) > 0 {
			t.Errorf("lintian: %v, %d errors and warnings:\n%s", err, len(bad), b)
		}
	})

	t.Run("install", func(t *testing.T) {
		testutil.RequireRoot(t)
		testutil.RequireCommand(t, "apt-get")
		installAndPurge(t, deb, strings.TrimSpace(string(v)))
	})
}

// installAndPurge installs deb with apt-get, runs the installed binary,
// purges the package and checks that nothing of it is left.
func installAndPurge(t *testing.T, deb, version string) {
	if exec.Command("dpkg-query", "-W", "udsvisor").Run() == nil {
		testutil.Unavailable(t, "a udsvisor package is already installed; the test would purge it")
	}
	if _, err := user.LookupGroup("udsvisor"); err == nil {
		testutil.Unavailable(t, "a group udsvisor exists; the test would see the package's purge remove it")
	}
	purge := func() ([]byte, error) {
		return exec.Command("apt-get", "purge", "-y", "-q", "udsvisor").CombinedOutput()
	}
	// Even when the test fails half-way, the machine keeps no udsvisor
	// package (a second purge finds nothing to do).
	t.Cleanup(func() { purge() })
	apt := exec.Command("apt-get", "install", "-y", "-q", deb)
	apt.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if b, err := apt.CombinedOutput(); err != nil {
		t.Fatalf("apt-get install %s: %v\n%s", deb, err, b)
	}
	b, err := exec.Command("dpkg", "-L", "udsvisor").Output()
	if err != nil {
		t.Fatalf("dpkg -L: %v", err)
	}
	paths := strings.Fields(string(b))
	if _, err := user.LookupGroup("udsvisor"); err != nil {
		t.Errorf("after install: %v, want the system group udsvisor", err)
	}
	const example = "/usr/share/doc/udsvisor/examples/services.toml.example"
	if b, err := exec.Command("/usr/bin/udsvisor", "check", "-c", example).CombinedOutput(); err != nil ||
		!strings.Contains(string(b), "/run/udsvisor-demo/hello.sock") {
		t.Errorf("udsvisor check -c %s: %v\n%s", example, err, b)
	}
	if b, err := exec.Command("/usr/bin/udsvisor", "version").Output(); err != nil || strings.TrimSpace(string(b)) != version {
		t.Errorf("installed udsvisor version: %q %v, want %q as built", b, err, version)
	}
	for _, page := range []string{"udsvisor", "services.toml"} {
		if b, err := exec.Command("man", "-w", page).Output(); err != nil || !strings.HasPrefix(string(b), "/usr/share/man/") {
			t.Errorf("man -w %s: %q %v", page, b, err)
		}
	}

	if b, err := purge(); err != nil {
		t.Fatalf("apt-get purge: %v\n%s", err, b)
	}
	if b, err := exec.Command("dpkg-query", "-W", "-f", "${db:Status-Status}", "udsvisor").Output(); err == nil && string(b) != "not-installed" {
		t.Errorf("after purge, dpkg says udsvisor is %q", b)
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil || p == "/." {
			continue
		}
		// A directory another package also holds (/usr/share/man, …)
		// stays; dpkg -S names its owners. /lib is usrmerge's symlink to
		// /usr/lib, whose owners dpkg knows.
		if real, err := filepath.EvalSymlinks(p); err == nil && fi.IsDir() &&
			exec.Command("dpkg", "-S", real).Run() == nil {
			continue
		}
		t.Errorf("after purge, %s is left", p)
	}
	if _, err := user.LookupGroup("udsvisor"); err == nil {
		t.Errorf("after purge, the group udsvisor is left")
	}
}
