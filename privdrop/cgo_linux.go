// SPDX-License-Identifier: Apache-2.0

//go:build linux && cgo

package privdrop

// The launch helper is the C in helper_linux.c: a constructor that runs
// before the Go runtime in every binary that links this package, and
// becomes the helper when argv[1] is helperArg. This file makes the
// package use cgo, which is what compiles and links the C.

// No -Werror here: the package's flags come after CGO_CFLAGS, so a
// user whose newer compiler adds a warning could not turn it off and
// could not build udsvisor at all. TestCWarnings compiles the C with
// -Werror instead, so that a warning still fails the tests.

// #cgo CFLAGS: -Wall -Wextra
// #include "wire_linux.h"
import "C"

// Each line overflows uint64, failing the build, unless wire.go's
// constant equals wire_linux.h's.
const (
	_ = uint64(specMagic-C.UDSV_SPEC_MAGIC) + uint64(C.UDSV_SPEC_MAGIC-specMagic)
	_ = uint64(reportMagic-C.UDSV_REPORT_MAGIC) + uint64(C.UDSV_REPORT_MAGIC-reportMagic)
	_ = uint64(maxSpecBytes-C.UDSV_MAX_SPEC_BYTES) + uint64(C.UDSV_MAX_SPEC_BYTES-maxSpecBytes)
	_ = uint64(maxErrBytes-C.UDSV_MAX_ERR_BYTES) + uint64(C.UDSV_MAX_ERR_BYTES-maxErrBytes)
	_ = uint64(maxGroups-C.UDSV_MAX_GROUPS) + uint64(C.UDSV_MAX_GROUPS-maxGroups)
	_ = uint64(flagPrivateNetwork-C.UDSV_FLAG_PRIVATE_NETWORK) + uint64(C.UDSV_FLAG_PRIVATE_NETWORK-flagPrivateNetwork)
	_ = uint64(flagsKnown-C.UDSV_FLAGS_KNOWN) + uint64(C.UDSV_FLAGS_KNOWN-flagsKnown)
)
