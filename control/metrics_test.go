// SPDX-License-Identifier: Apache-2.0

//go:build linux

package control

import (
	"io"
	"os"
	"regexp"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// The metrics carry udsvisor's open fds and their limit, read from the
// process itself, and its version (issue 10, item 14).
func TestMetricsProcessFDs(t *testing.T) {
	ts := startServer(t, newFake(), Options{ControlGID: -1, StatusGID: -1, Version: "1.2.3"}, 0, 0o600, nil)
	resp := get(t, ts, "/metrics")
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string) int {
		m := regexp.MustCompile(`(?m)^` + name + ` (\d+)$`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("metrics lack %s:\n%s", name, body)
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if got := value("process_max_fds"); uint64(got) != lim.Cur {
		t.Errorf("process_max_fds %d, want %d", got, lim.Cur)
	}
	if !regexp.MustCompile(`(?m)^udsvisor_build_info\{version="1\.2\.3",goversion="go[^"]+"\} 1$`).Match(body) {
		t.Errorf("metrics lack udsvisor_build_info for 1.2.3:\n%s", body)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	// The test and the server share the process; a few fds come and go
	// (connections), so the figure is checked against the count, not
	// equated with it.
	if got := value("process_open_fds"); got < 3 || got > len(fds)+16 {
		t.Errorf("process_open_fds %d, while the process has %d", got, len(fds))
	}
}
