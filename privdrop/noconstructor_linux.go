// SPDX-License-Identifier: Apache-2.0

//go:build linux

package privdrop

import (
	"fmt"
	"os"
	"strconv"
)

// init runs in the launch helper only if the constructor in helper_linux.c
// did not: that constructor takes over before the Go runtime starts and
// never returns. A link that leaves out the C's .init_array (go build
// -ldflags=-linkmode=internal does, and still succeeds) would otherwise
// run the binary's main as the helper: udsvisor would print its usage on
// the service's stderr and exit, with no report on the error pipe, and
// AfterStart would take that EOF for a successful exec of every service.
func init() {
	if len(os.Args) < 2 || os.Args[1] != helperArg {
		return
	}
	w := wireError{Op: helperOp, Msg: "the C constructor in helper_linux.c did not run, " +
		"so the binary's Go code did (linked without its .init_array, e.g. -ldflags=-linkmode=internal?)"}
	if fd, err := strconv.Atoi(os.Getenv(envErrFD)); err == nil && fd >= 3 {
		os.NewFile(uintptr(fd), "error pipe").Write(w.encode())
	} else {
		fmt.Fprintf(os.Stderr, "udsvisor: %v\n", w.err())
	}
	os.Exit(127)
}
