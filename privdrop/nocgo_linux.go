// SPDX-License-Identifier: Apache-2.0

//go:build linux && !cgo

package privdrop

// The launch helper is C (helper_linux.c) that runs as an ELF constructor
// before the Go runtime, and only a cgo build links it in. Without it the
// udsvisor binary re-executed as the helper would run main instead, fail
// on the unknown argument without writing a report, and AfterStart would
// take the silent EOF on the error pipe for a successful exec: every
// service would "start" and never run. So a build without cgo must not
// produce a binary, and the undefined name below is the error it gets.
var _ = privdrop_needs_cgo__build_with_CGO_ENABLED_1_and_a_C_compiler
