// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package packaging holds the service-manager files of udsvisor (systemd
// unit, Debian package build, FreeBSD rc.d script) and the tests that
// build and check them.
package packaging
