// SPDX-License-Identifier: Apache-2.0

//go:build linux

package packaging

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The copyright file names every Go module linked into a Linux or
// FreeBSD binary, with the holder and the licence the module's own
// licence file states, and no module that is not linked: adding or
// dropping a dependency without updating it fails here.
func TestCopyrightListsLinkedModules(t *testing.T) {
	paras := copyrightParagraphs(t, "deb/copyright")
	files := map[string]map[string]string{} // module path -> its paragraph
	licences := map[string]bool{}
	for _, p := range paras {
		switch {
		case strings.HasPrefix(p["Files"], "vendor/"):
			files[strings.TrimSuffix(strings.TrimPrefix(p["Files"], "vendor/"), "/*")] = p
		case p["Files"] == "" && p["License"] != "":
			licences[strings.SplitN(p["License"], "\n", 2)[0]] = true
		}
	}
	for _, p := range paras {
		if l := p["License"]; p["Files"] != "" && !licences[l] {
			t.Errorf("Files: %s names licence %q, which has no License paragraph", p["Files"], l)
		}
	}

	var linked []string
	for _, m := range linkedModules(t) {
		linked = append(linked, m.Path)
		p, ok := files[m.Path]
		if !ok {
			t.Errorf("module %s is linked into the binary but has no Files: vendor/%s/* paragraph", m.Path, m.Path)
			continue
		}
		text := moduleLicenceText(t, m.Dir)
		if want := classifyLicence(text); p["License"] != want {
			t.Errorf("module %s: copyright says License: %s, its licence file reads as %s", m.Path, p["License"], want)
		}
		if p["Copyright"] == "" || !strings.Contains(text, p["Copyright"]) {
			t.Errorf("module %s: Copyright: %q is not in its licence or notice files", m.Path, p["Copyright"])
		}
	}
	for path := range files {
		if !slices.Contains(linked, path) {
			t.Errorf("copyright lists %s, which the binary does not link", path)
		}
	}
}

type module struct{ Path, Dir string }

// linkedModules lists the modules other than this one that a udsvisor
// release binary, for Linux or FreeBSD, is built from.
func linkedModules(t *testing.T) []module {
	t.Helper()
	var mods []module
	for _, goos := range []string{"linux", "freebsd"} {
		cmd := exec.Command("go", "list", "-deps", "-json=Module", "../cmd/udsvisor")
		cmd.Env = append(os.Environ(), "GOOS="+goos)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("GOOS=%s go list: %v", goos, err)
		}
		mods = appendModules(t, mods, out)
	}
	if len(mods) == 0 {
		t.Fatal("go list found no module linked into udsvisor")
	}
	return mods
}

// appendModules adds to mods the modules of go list -json=Module's
// output that are not there yet.
func appendModules(t *testing.T, mods []module, out []byte) []module {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var pkg struct{ Module *struct{ Path, Dir string } }
		if err := dec.Decode(&pkg); err != nil {
			t.Fatal(err)
		}
		if pkg.Module == nil || pkg.Module.Path == "github.com/udsvisor/udsvisor" {
			continue
		}
		m := module{pkg.Module.Path, pkg.Module.Dir}
		if !slices.Contains(mods, m) {
			mods = append(mods, m)
		}
	}
	return mods
}

// moduleLicenceText joins the module's licence and notice files.
func moduleLicenceText(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, pat := range []string{"LICENSE*", "COPYING*", "NOTICE*"} {
		names, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, n := range names {
			data, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(data)
		}
	}
	if b.Len() == 0 {
		t.Fatalf("no licence file in %s", dir)
	}
	return b.String()
}

// classifyLicence names a licence text by its DEP-5 short name.
func classifyLicence(text string) string {
	switch {
	case strings.Contains(text, "Apache License") && strings.Contains(text, "Version 2.0"):
		return "Apache-2.0"
	case strings.Contains(text, "Permission is hereby granted, free of charge"):
		return "Expat"
	case strings.Contains(text, "Neither the name of") && strings.Contains(text, "Redistribution and use in source and binary forms"):
		return "BSD-3-clause"
	}
	return "unknown"
}

// copyrightParagraphs parses a DEP-5 file into its paragraphs, each a
// map from field to value (continuation lines joined with newlines).
func copyrightParagraphs(t *testing.T, path string) []map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var paras []map[string]string
	for _, block := range strings.Split(strings.TrimSpace(string(data)), "\n\n") {
		p := map[string]string{}
		var last string
		for _, line := range strings.Split(block, "\n") {
			if strings.HasPrefix(line, " ") {
				p[last] += "\n" + strings.TrimSpace(line)
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				t.Fatalf("%s: line %q is neither a field nor a continuation", path, line)
			}
			last = k
			p[k] = strings.TrimSpace(v)
		}
		paras = append(paras, p)
	}
	return paras
}
