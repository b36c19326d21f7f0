// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The README's Layout table names every package of the module in import
// order, and the tree reads as the import graph: no package imports a
// package of a row above its own, nor its parent directory's package.
func TestLayout(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	start := strings.Index(section, "\n## Layout\n")
	if start < 0 {
		t.Fatal("README has no Layout section")
	}
	section = section[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var rows []string // package paths or "prefix/..." in table order
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(section, -1) {
		rows = append(rows, m[1])
	}

	out, err := exec.Command("go", "list", "-json", "github.com/udsvisor/udsvisor/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	const module = "github.com/udsvisor/udsvisor/"
	imports := map[string][]string{} // package → the module's packages it imports
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(p.ImportPath, module)
		imports[name] = nil
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module) {
				imports[name] = append(imports[name], strings.TrimPrefix(imp, module))
			}
		}
	}

	row := func(pkg string) int {
		return slices.IndexFunc(rows, func(r string) bool {
			prefix, group := strings.CutSuffix(r, "/...")
			return r == pkg || group && (pkg == prefix || strings.HasPrefix(pkg, prefix+"/"))
		})
	}
	used := make([]bool, len(rows))
	for pkg, deps := range imports {
		i := row(pkg)
		if i < 0 {
			t.Errorf("package %s is not in the README's Layout table", pkg)
			continue
		}
		used[i] = true
		for _, dep := range deps {
			if dep == path.Dir(pkg) {
				t.Errorf("%s imports its parent directory's package %s", pkg, dep)
			}
			// Within a group (a/...) anything goes; across rows, only
			// downward.
			if j := row(dep); j >= 0 && j < i {
				t.Errorf("%s (row %d) imports %s (row %d), a row above it", pkg, i+1, dep, j+1)
			}
		}
	}
	for i, r := range rows {
		if !used[i] {
			t.Errorf("the Layout table names %s, which is no package", r)
		}
	}
}
