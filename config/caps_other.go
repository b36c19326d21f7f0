// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package config

// Ambient capabilities are Linux's; elsewhere ambient_capabilities is
// refused (see ambientCaps) and no name is known.
var (
	capabilities   map[string]uintptr
	rootEquivalent []uintptr
)
