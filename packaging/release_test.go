// SPDX-License-Identifier: Apache-2.0

//go:build linux

package packaging

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/udsvisor/udsvisor/internal/testutil"
)

// release runs packaging/release/build.sh from the checkout at src into
// out, with env added, and returns the names of the files it wrote.
func release(t *testing.T, src, out string, env ...string) []string {
	t.Helper()
	cmd := exec.Command(filepath.Join(src, "packaging/release/build.sh"), out)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh %s: %v\n%s", strings.Join(env, " "), err, b)
	}
	return testutil.DirNames(t, out)
}

// copyCheckout copies the module's files as git sees them (tracked and
// untracked, not ignored) to dst, keeping their modes.
func copyCheckout(t *testing.T, dst string) {
	t.Helper()
	ls, err := exec.Command("git", "-C", "..", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(ls), "\x00"), "\x00") {
		st, err := os.Stat(filepath.Join("..", name))
		if err != nil || !st.Mode().IsRegular() {
			continue // deleted in the work tree, or a submodule
		}
		b, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

// sameFiles fails unless every file of dir a is in dir b with the same bytes.
func sameFiles(t *testing.T, a, b string, names []string) {
	t.Helper()
	for _, n := range names {
		x, err1 := os.ReadFile(filepath.Join(a, n))
		y, err2 := os.ReadFile(filepath.Join(b, n))
		if err1 != nil || err2 != nil {
			t.Errorf("%s: %v %v", n, err1, err2)
			continue
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between %s and %s: the build is not reproducible", n, a, b)
		}
	}
}

// The release build is reproducible and its binaries are what the README
// says (issue 14, item 4): built a second time from a copy of the
// checkout at another path, every file (the three binaries, LICENSE,
// NOTICE and SHA256SUMS) has the same bytes, and so has the linux/amd64 binary built
// a third time with an empty build cache; SHA256SUMS checks; the Linux
// binaries are static ELF files (no interpreter, no shared library), the
// FreeBSD one is a FreeBSD ELF file; and the linux/amd64 binary prints
// the stamped version and commit.
func TestReleaseReproducible(t *testing.T) {
	testutil.RequireCommand(t, "gcc")
	testutil.RequireCommand(t, "sha256sum")
	arm64CC(t)
	const (
		version = "1.2.3~test"
		commit  = "0123456789abcdef0123456789abcdef01234567"
	)
	stamp := []string{"VERSION=" + version, "COMMIT=" + commit}
	top, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	first := filepath.Join(tmp, "first")
	names := release(t, top, first, stamp...)
	bin := func(goos, goarch string) string { return "udsvisor_" + version + "_" + goos + "_" + goarch }
	bins := []string{bin("freebsd", "amd64"), bin("linux", "amd64"), bin("linux", "arm64")}
	if want := append([]string{"LICENSE", "NOTICE", "SHA256SUMS"}, bins...); !slices.Equal(names, want) {
		t.Fatalf("build.sh wrote %q, want %q", names, want)
	}
	releaseNotices(t, first)

	src := filepath.Join(tmp, "elsewhere", "src")
	copyCheckout(t, src)
	second := filepath.Join(tmp, "second")
	sameFiles(t, first, second, release(t, src, second, stamp...))
	third := filepath.Join(tmp, "third")
	sameFiles(t, first, third, slices.DeleteFunc(
		release(t, src, third, append(stamp, "TARGETS=linux/amd64", "GOCACHE="+filepath.Join(tmp, "gocache"))...),
		// Both name what was built: the third build has one binary.
		func(n string) bool { return n == "SHA256SUMS" || n == "NOTICE" }))

	sums := exec.Command("sha256sum", "--check", "--strict", "SHA256SUMS")
	sums.Dir = first
	if b, err := sums.CombinedOutput(); err != nil {
		t.Errorf("sha256sum --check: %v\n%s", err, b)
	}
	for _, n := range bins {
		f, err := elf.Open(filepath.Join(first, n))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s has an interpreter (PT_INTERP): not static", n)
			}
		}
		if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
			t.Errorf("%s needs shared libraries %q (%v)", n, libs, err)
		}
		if f.Section(".debug_info") != nil || f.Section(".symtab") != nil {
			t.Errorf("%s keeps debug information or a symbol table", n)
		}
		wantOS := elf.ELFOSABI_NONE
		if strings.Contains(n, "freebsd") {
			wantOS = elf.ELFOSABI_FREEBSD
		}
		if f.OSABI != wantOS {
			t.Errorf("%s: OS ABI %v, want %v", n, f.OSABI, wantOS)
		}
	}
	out, err := exec.Command(filepath.Join(first, bin("linux", "amd64")), "version").Output()
	if err != nil {
		t.Fatalf("version: %v", err)
	}
	if w := "udsvisor " + version + " (commit " + commit + ", go"; !strings.HasPrefix(string(out), w) {
		t.Errorf("version printed %q, want it to start with %q", out, w)
	}
}

// releaseNotices checks what dir holds beside the binaries for their
// licences: LICENSE is the project's, and NOTICE names the glibc each
// Linux binary links statically, by the version dpkg knows, and holds
// the Go modules' notices (the Debian copyright file, whole).
func releaseNotices(t *testing.T, dir string) {
	t.Helper()
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if read(filepath.Join(dir, "LICENSE")) != read("../LICENSE") {
		t.Error("the release's LICENSE is not the project's")
	}
	notice := read(filepath.Join(dir, "NOTICE"))
	version := func(pkg string) string {
		v, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
		if err != nil {
			t.Fatalf("dpkg-query %s: %v", pkg, err)
		}
		return string(v)
	}
	for _, want := range []string{
		"linux/amd64: libc6-dev " + version("libc6-dev:amd64") + " ",
		"linux/arm64: libc6-dev-arm64-cross " + version("libc6-dev-arm64-cross") + " ",
		"Lesser General Public License", read("deb/copyright"),
	} {
		if !strings.Contains(notice, want) {
			t.Errorf("NOTICE lacks %q:\n%s", want, notice)
		}
	}
}
