// SPDX-License-Identifier: Apache-2.0

//go:build linux

package config

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLimits pins the typed result of every spelling of a limit.
func TestLimits(t *testing.T) {
	for _, src := range []string{
		base + `limits = { nofile = 65536, nproc = [256, 512], core = 0, stack = "infinity", memlock = [1024, "infinity"] }`,
		base + "[services.api.limits]\nstack = \"infinity\"\nnproc = [256, 512]\nnofile = 65536\nmemlock = [\n  1024,\n  \"infinity\",\n]\ncore = 0\n",
	} {
		cfg := mustParse(t, src)
		want := []Limit{
			{Name: "core", Resource: unix.RLIMIT_CORE, Soft: 0, Hard: 0},
			{Name: "memlock", Resource: unix.RLIMIT_MEMLOCK, Soft: 1024, Hard: unix.RLIM_INFINITY},
			{Name: "nofile", Resource: unix.RLIMIT_NOFILE, Soft: 65536, Hard: 65536},
			{Name: "nproc", Resource: unix.RLIMIT_NPROC, Soft: 256, Hard: 512},
			{Name: "stack", Resource: unix.RLIMIT_STACK, Soft: unix.RLIM_INFINITY, Hard: unix.RLIM_INFINITY},
		}
		if got := serviceNamed(cfg, "api").Limits; !reflect.DeepEqual(got, want) {
			t.Errorf("Limits = %+v, want %+v", got, want)
		}
		var strs []string
		for _, l := range want {
			strs = append(strs, l.String())
		}
		if got := strings.Join(strs, " "); got != "core=0 memlock=1024:infinity nofile=65536 nproc=256:512 stack=infinity" {
			t.Errorf("String: %q", got)
		}
	}
	if s := serviceNamed(mustParse(t, base), "api"); s.Limits != nil || s.AmbientCaps != nil || s.AmbientCapNames != nil {
		t.Errorf("defaults: Limits %v AmbientCaps %v %v, want none", s.Limits, s.AmbientCaps, s.AmbientCapNames)
	}
}

func TestBadLimits(t *testing.T) {
	l4 := "services.toml:4: services.api.limits"
	syntax := `must be a non-negative integer, "infinity" or [soft, hard]`
	nrOpen := readSysctl("fs/nr_open")
	if nrOpen == 0 {
		t.Fatal("cannot read fs.nr_open")
	}
	runCases(t, []badCase{
		{"unknown name", base + `limits = { files = 10 }`, []string{l4 + `.files: unknown resource limit; one of as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, sigpending, stack`}, nil},
		{"rttime is not offered", base + `limits = { rttime = 10 }`, []string{l4 + `.rttime: unknown resource limit; one of as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, sigpending, stack`}, nil},
		{"upper case", base + `limits = { NOFILE = 10 }`, []string{l4 + `.NOFILE: unknown resource limit; one of as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, sigpending, stack`}, nil},
		{"negative", base + `limits = { nofile = -1 }`, []string{l4 + `.nofile: -1 ` + syntax}, nil},
		{"negative soft", base + `limits = { nofile = [-1, 10] }`, []string{l4 + `.nofile[0]: -1 ` + syntax}, nil},
		{"negative hard", base + `limits = { core = [0, -5] }`, []string{l4 + `.core[1]: -5 ` + syntax}, nil},
		{"unlimited", base + `limits = { core = "unlimited" }`, []string{l4 + `.core: "unlimited" ` + syntax}, nil},
		{"float", base + `limits = { core = 1.5 }`, []string{l4 + `.core: ` + syntax + `, not a float`}, nil},
		{"boolean in array", base + `limits = { core = [true, 1] }`, []string{l4 + `.core[0]: ` + syntax + `, not a boolean`}, nil},
		{"three elements", base + `limits = { nofile = [1, 2, 3] }`, []string{l4 + `.nofile: ` + syntax + `, not an array of 3`}, nil},
		{"one element", base + `limits = { nofile = [1] }`, []string{l4 + `.nofile: ` + syntax + `, not an array of 1`}, nil},
		{"soft above hard", base + `limits = { nofile = [2048, 1024] }`, []string{l4 + `.nofile: soft limit 2048 is above the hard limit 1024`}, nil},
		{"infinite soft", base + `limits = { core = ["infinity", 0] }`, []string{l4 + `.core: soft limit infinity is above the hard limit 0`}, nil},
		{"nofile above nr_open", base + `limits = { nofile = ` + strconv.Itoa(nrOpen+1) + ` }`,
			[]string{l4 + `.nofile: ` + strconv.Itoa(nrOpen+1) + ` is above fs.nr_open (` + strconv.Itoa(nrOpen) + `), the kernel's maximum`}, nil},
		{"nofile hard above nr_open", base + `limits = { nofile = [1024, ` + strconv.Itoa(nrOpen+1) + `] }`,
			[]string{l4 + `.nofile: ` + strconv.Itoa(nrOpen+1) + ` is above fs.nr_open (` + strconv.Itoa(nrOpen) + `), the kernel's maximum`}, nil},
		{"nofile infinity", base + `limits = { nofile = "infinity" }`,
			[]string{l4 + `.nofile: infinity is above fs.nr_open (` + strconv.Itoa(nrOpen) + `), the kernel's maximum`}, nil},
		{"nofile at nr_open", base + `limits = { nofile = ` + strconv.Itoa(nrOpen) + ` }`, nil, nil},
		{"not a table", base + `limits = 5`, []string{l4 + `: must be a table, not an integer`}, nil},
		{"as a table", base + "[services.api.limits]\nnofile = 10\nnproc = -1", []string{`services.toml:6: services.api.limits.nproc: -1 ` + syntax}, nil},
		{"every error at once", base + "limits = {\n  nofile = [3, 2],\n  bogus = 1,\n  core = -1,\n}", []string{
			`services.toml:5: services.api.limits.nofile: soft limit 3 is above the hard limit 2`,
			`services.toml:6: services.api.limits.bogus: unknown resource limit; one of as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, sigpending, stack`,
			`services.toml:7: services.api.limits.core: -1 ` + syntax,
		}, nil},
	})
}

// TestAmbientCaps pins the typed result: numbers in ascending order, with
// their canonical names, whatever the spelling.
func TestAmbientCaps(t *testing.T) {
	cfg := mustParse(t, base+`ambient_capabilities = ["net_raw", "CAP_NET_BIND_SERVICE", "Cap_Checkpoint_Restore"]`)
	s := serviceNamed(cfg, "api")
	if want := []uintptr{unix.CAP_NET_BIND_SERVICE, unix.CAP_NET_RAW, unix.CAP_CHECKPOINT_RESTORE}; !reflect.DeepEqual(s.AmbientCaps, want) {
		t.Errorf("AmbientCaps = %v, want %v", s.AmbientCaps, want)
	}
	if want := []string{"CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_CHECKPOINT_RESTORE"}; !reflect.DeepEqual(s.AmbientCapNames, want) {
		t.Errorf("AmbientCapNames = %q, want %q", s.AmbientCapNames, want)
	}
	if s := serviceNamed(mustParse(t, base+`ambient_capabilities = []`), "api"); s.AmbientCaps != nil || s.AmbientCapNames != nil {
		t.Errorf("empty list: %v %q, want none", s.AmbientCaps, s.AmbientCapNames)
	}
	// Every capability has a name, and the names round-trip.
	for name, n := range capabilities {
		if got := capName(n); got != "CAP_"+name {
			t.Errorf("capName(%d) = %q, want CAP_%s", n, got, name)
		}
	}
	if len(capabilities) != unix.CAP_LAST_CAP+1 {
		t.Errorf("%d capabilities named, x/sys knows %d", len(capabilities), unix.CAP_LAST_CAP+1)
	}
}

func TestBadAmbientCaps(t *testing.T) {
	a4 := "services.toml:4: services.api.ambient_capabilities"
	granted := " is granted to the service as an ambient capability"
	rootEq := " is root-equivalent; the service is granted it, and whoever takes over the service can take over the host"
	cases := []badCase{
		{"unknown", base + `ambient_capabilities = ["CAP_NET_BIND"]`, []string{a4 + `[0]: unknown capability "CAP_NET_BIND"`}, nil},
		{"empty name", base + `ambient_capabilities = ["net_raw", ""]`, []string{a4 + `[1]: unknown capability ""`}, nil},
		{"prefix only", base + `ambient_capabilities = ["CAP_"]`, []string{a4 + `[0]: unknown capability "CAP_"`}, nil},
		{"number", base + `ambient_capabilities = [10]`, []string{a4 + `[0]: must be a string, not an integer`}, nil},
		{"not an array", base + `ambient_capabilities = "CAP_NET_RAW"`, []string{a4 + `: must be an array of strings, not a string`}, nil},
		{"duplicate", base + `ambient_capabilities = ["net_bind_service", "CAP_NET_BIND_SERVICE"]`,
			[]string{a4 + `[1]: CAP_NET_BIND_SERVICE is already listed at services.api.ambient_capabilities[0]`}, nil},
		{"root service", "[services.api]\ncommand = [\"true\"]\nuser = \"root\"\nallow_root = true\nambient_capabilities = [\"NET_RAW\"]",
			[]string{`services.toml:5: services.api.ambient_capabilities: a root service keeps every capability; ambient_capabilities is for unprivileged users`}, nil},
		{"one grant", base + `ambient_capabilities = ["CAP_NET_BIND_SERVICE"]`, nil, []string{a4 + `[0]: CAP_NET_BIND_SERVICE` + granted}},
		{"multi-line", base + "ambient_capabilities = [\n  \"net_raw\",\n  \"sys_nice\",\n]", nil, []string{
			`services.toml:5: services.api.ambient_capabilities[0]: CAP_NET_RAW` + granted,
			`services.toml:6: services.api.ambient_capabilities[1]: CAP_SYS_NICE` + granted,
		}},
	}
	for _, name := range []string{"SYS_ADMIN", "SYS_PTRACE", "SYS_MODULE", "DAC_OVERRIDE", "DAC_READ_SEARCH",
		"SETUID", "SETGID", "CHOWN", "FOWNER", "SYS_RAWIO", "BPF"} {
		cases = append(cases, badCase{"root-equivalent " + name, base + `ambient_capabilities = ["net_bind_service", "cap_` + strings.ToLower(name) + `"]`, nil, []string{
			a4 + `[0]: CAP_NET_BIND_SERVICE` + granted,
			a4 + `[1]: CAP_` + name + rootEq,
		}})
	}
	runCases(t, cases)
}

// TestCapsBeyondKernel covers a kernel older than x/sys: a capability it
// does not know is refused at check time rather than at capset.
func TestCapsBeyondKernel(t *testing.T) {
	src := base + `ambient_capabilities = ["CAP_BPF", "CAP_CHECKPOINT_RESTORE"]`
	raw := map[string]any{"ambient_capabilities": []any{"CAP_BPF", "CAP_CHECKPOINT_RESTORE"}}
	c := &checker{file: "services.toml", lines: locate(src), capLastCap: unix.CAP_BPF}
	s := &Service{User: "daemon", UID: 1}
	c.ambientCaps(table{key: "services.api", m: raw}, s)
	want := []string{`services.toml:4: services.api.ambient_capabilities[1]: CAP_CHECKPOINT_RESTORE is not supported by this kernel (its last capability is 39)`}
	if got := messages(c.errs); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !reflect.DeepEqual(s.AmbientCaps, []uintptr{unix.CAP_BPF}) {
		t.Errorf("AmbientCaps = %v, want [CAP_BPF]", s.AmbientCaps)
	}
}
