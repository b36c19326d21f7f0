// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// buildCommit is the stamped commit, else the vcs.revision of the build
// info (with "+dirty" when vcs.modified), else "unknown".
func buildCommit() string {
	if commit != "unknown" && commit != "" {
		return commit
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return "unknown"
	}
	return rev + dirty
}

// printVersion writes `udsvisor VERSION (commit COMMIT, GOVERSION)`.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "udsvisor %s (commit %s, %s)\n", version, buildCommit(), runtime.Version())
}
