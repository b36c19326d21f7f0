// SPDX-License-Identifier: Apache-2.0

package api

// maxSocketPath is the longest path bind(2) and connect(2) take: sun_path
// holds 108 bytes with the terminating NUL.
const maxSocketPath = 107

// RootSocketSuffix makes the path of the root-only control socket from
// the control socket's.
const RootSocketSuffix = ".root"

// RootSocket returns the path of the root-only control socket that
// udsvisor serves next to its control socket at socket: the same path
// with ".root" appended, root:root 0600, serving the same API, so that
// only root can connect and no other user can fill its connection slots
// or its backlog (T28; systemd keeps /run/systemd/private for the same
// reason). It returns "" when that path would be too long.
func RootSocket(socket string) string {
	p := socket + RootSocketSuffix
	if len(p) > maxSocketPath {
		return ""
	}
	return p
}
