// SPDX-License-Identifier: Apache-2.0

// Package testapp holds what integration/testapp, the service that
// udsvisor's tests supervise, and those tests share: the JSON it answers
// with. One definition keeps a field added to the app from going missing
// in a test's copy.
package testapp

// Report is the JSON that the test app's GET / returns: what the process
// sees (identity, LISTEN_* variables, environment), for tests to compare
// with what the kernel says in /proc.
type Report struct {
	Pid        int      `json:"pid"`
	UID        int      `json:"uid"`
	GID        int      `json:"gid"`
	Groups     []int    `json:"groups"`
	Socket     string   `json:"socket"` // the LISTEN_FDNAMES name this request came in on
	Names      []string `json:"names"`  // every name received
	ListenPID  string   `json:"listen_pid"`
	ListenFDs  string   `json:"listen_fds"`
	FDNames    string   `json:"listen_fdnames"`
	Env        []string `json:"env"`
	Cwd        string   `json:"cwd"`
	Grandchild int      `json:"grandchild,omitempty"` // with -grandchild or -escape
	Path       string   `json:"path,omitempty"`       // the request's path
}

// Forwarded is what GET /headers returns: the headers a reverse proxy
// sets, as the app received them.
type Forwarded struct {
	Socket          string `json:"socket"` // the LISTEN_FDNAMES name this request came in on
	Host            string `json:"host"`
	XRealIP         string `json:"x_real_ip"`
	XForwardedFor   string `json:"x_forwarded_for"` // every X-Forwarded-For line, joined with ", "
	XForwardedProto string `json:"x_forwarded_proto"`
	Connection      string `json:"connection"`
	Upgrade         string `json:"upgrade"`
}
