// SPDX-License-Identifier: Apache-2.0

package config

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// services.toml(5) lists, in each table's section, exactly the keys this
// package accepts in that table, and names every resource limit: a key
// added here without its paragraph there fails the test, and so does a
// paragraph for a key that is gone.
func TestManPageKeys(t *testing.T) {
	b, err := os.ReadFile("../packaging/man/services.toml.5")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string][]string{} // .SS title → the .TP keys under it
	var section string
	lines := strings.Split(string(b), "\n")
	for i, line := range lines {
		switch {
		case strings.HasPrefix(line, ".SH "):
			section = ""
		case strings.HasPrefix(line, ".SS "):
			section = strings.ReplaceAll(strings.TrimPrefix(line, ".SS "), `\fINAME\fP`, "NAME")
			documented[section] = []string{}
		case line == ".TP" && section != "" && i+1 < len(lines) && strings.HasPrefix(lines[i+1], ".B "):
			documented[section] = append(documented[section], strings.TrimPrefix(lines[i+1], ".B "))
		}
	}
	for _, tt := range []struct {
		section string
		keys    []string
	}{
		{"[supervisor]", supervisorKeys},
		{"[services.NAME]", serviceKeys},
		{"[[services.NAME.sockets]]", socketKeys},
		{"[services.NAME.relay]", relayKeys},
		{"[[services.NAME.proxy]]", routeKeys},
	} {
		got, ok := documented[tt.section]
		if !ok {
			t.Errorf("services.toml.5 has no section .SS %s", tt.section)
			continue
		}
		want := slices.Sorted(slices.Values(tt.keys))
		if slices.Sort(got); !slices.Equal(got, want) {
			t.Errorf("services.toml.5 %s documents %v, want the accepted keys %v", tt.section, got, want)
		}
		delete(documented, tt.section)
	}
	for section := range documented {
		t.Errorf("services.toml.5 documents %s, which is no table of the config", section)
	}
	for name := range rlimits {
		if !regexp.MustCompile(`(?m)^\.BR? ` + name + `( [,.])?$`).Match(b) {
			t.Errorf("services.toml.5 does not name the limit %s", name)
		}
	}
}
