// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/udsvisor/udsvisor/internal/idname"
)

var serviceKeys = []string{
	"command", "user", "allow_root", "group", "supplementary_groups", "working_dir",
	"environment", "restart", "stop_signal", "stop_timeout", "min_uptime", "start_limit",
	"ready", "start_timeout", "watchdog", "start", "idle_stop", "instances", "restart_mode",
	"umask", "limits", "ambient_capabilities", "sockets", "proxy", "relay",
}

// ServiceNameForm describes the names ValidServiceName accepts, for
// messages that tell the user what to write.
const ServiceNameForm = "[A-Za-z0-9_.@-]{1,64}"

// ValidServiceName reports whether a service may be called name:
// ServiceNameForm, except "." and "..". The name appears as a path
// segment in URLs of the control API, in metrics labels and in log
// fields, so the config and the API must agree on it. A loop rather than
// a regexp: package regexps are compiled at every start of the binary,
// the launch helper's included, and this one alone cost a noticeable
// share of it.
func ValidServiceName(name string) bool {
	return len(name) >= 1 && len(name) <= 64 && strings.Trim(name, alnum+"_.@-") == "" &&
		name != "." && name != ".."
}

// alnum is a cutset for strings.Trim: a string that Trim empties holds
// only these bytes and the others listed with it.
const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// reservedEnv are set by udsvisor for socket activation and readiness; a
// configured value would misdirect the service (SECURITY-NOTES T14).
var reservedEnv = []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_PIDFDID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC", "UDSVISOR_INSTANCE"}

// service converts one [services.NAME] table.
func (c *checker) service(name string, v any) *Service {
	key := joinKey("services", name)
	if !ValidServiceName(name) {
		c.errorf(key, "%q is not a valid service name; names are %s", name, ServiceNameForm)
	}
	m, ok := v.(map[string]any)
	if !ok {
		c.errorf(key, "must be a table like [%s], not %s", key, typeName(v))
		return nil
	}
	t := table{key: key, m: m}
	c.unknown(t, serviceKeys...)
	s := &Service{
		Name:        name,
		Line:        c.lines.line(key),
		WorkingDir:  "/",
		Restart:     RestartAlways,
		StopSignal:  unix.SIGTERM,
		StopTimeout: defaultStopTimeout,
		MinUptime:   defaultMinUptime,
		Ready:       ReadyStarted,
		Start:       StartImmediate,
		Instances:   1,
		RestartMode: RestartStopStart,
		StartLimit:  defaultStartLimit,
		Umask:       defaultUmask,
		allowRoot:   c.boolean(t, "allow_root"),
	}
	c.identity(t, s)
	if dir, ok := c.str(t, "working_dir"); ok {
		switch {
		case !filepath.IsAbs(dir):
			c.errorf(t.sub("working_dir"), "%q must be absolute", dir)
		case filepath.Clean(dir) != dir:
			c.errorf(t.sub("working_dir"), "not a clean path; did you mean %q?", filepath.Clean(dir))
		default:
			s.WorkingDir = dir
			c.openDir(t.sub("working_dir"), dir)
		}
	}
	path := c.environment(t, s)
	c.command(t, s, path)
	if v, ok := enum(c, t, "restart", RestartAlways, RestartOnFailure, RestartNever); ok {
		s.Restart = v
	}
	if v, ok := enum(c, t, "restart_mode", RestartStopStart, RestartOverlap); ok {
		s.RestartMode = v
	}
	if n, ok := c.integer(t, "instances"); ok {
		if n < 1 || n > MaxInstances {
			c.errorf(t.sub("instances"), "%d must be 1 to %d", n, MaxInstances)
		} else {
			s.Instances = int(n)
		}
	}
	if sig, ok := c.signal(t, "stop_signal"); ok {
		s.StopSignal = sig
	}
	if d, ok := c.duration(t, "stop_timeout"); ok {
		s.StopTimeout = d
	}
	if d, ok := c.duration(t, "min_uptime"); ok {
		s.MinUptime = d
	}
	c.readiness(t, s)
	if n, ok := c.integer(t, "start_limit"); ok {
		if n < 0 || n > 1<<31-1 {
			c.errorf(t.sub("start_limit"), "%d must be 0 (never give up) or a positive count", n)
		} else {
			s.StartLimit = int(n)
		}
	}
	if m, ok := c.mode(t, "umask", "0022"); ok {
		if m.Perm() != m {
			c.errorf(t.sub("umask"), "%q is not a umask; it must be at most \"0777\"", t.m["umask"])
		} else {
			s.Umask = m
		}
	}
	c.limits(t, s)
	c.ambientCaps(t, s)
	for i, st := range c.tables(t, "sockets") {
		s.Sockets = append(s.Sockets, c.socket(s, st, i))
	}
	c.uniqueFDNames(s)
	c.placeFDs(s)
	c.expandTemplates(t, s)
	c.startMode(t, s)
	c.relay(t, s)
	c.routes(s, t)
	return s
}

// startMode reads start and idle_stop, once the sockets are known: only
// a connection starts an on-demand service.
func (c *checker) startMode(t table, s *Service) {
	if v, ok := enum(c, t, "start", StartImmediate, StartOnDemand); ok {
		s.Start = v
	}
	if s.Start == StartOnDemand && len(s.Sockets) == 0 {
		c.errorf(t.sub("start"), "an on-demand service needs a socket: a connection to it is what starts the service")
	}
	if d, ok := c.duration(t, "idle_stop"); ok {
		if s.Start != StartOnDemand {
			c.errorf(t.sub("idle_stop"), "needs start = \"on-demand\": a stopped service must be started again by the next connection")
		} else {
			s.IdleStop = d
		}
	}
}

// readiness reads ready and the timeouts that only a notify service has.
func (c *checker) readiness(t table, s *Service) {
	if v, ok := enum(c, t, "ready", ReadyStarted, ReadyNotify); ok {
		s.Ready = v
	}
	if s.Ready == ReadyNotify {
		s.StartTimeout = defaultStartTimeout
	}
	for _, name := range []string{"start_timeout", "watchdog"} {
		d, ok := c.duration(t, name)
		switch {
		case !ok:
		case s.Ready != ReadyNotify:
			c.errorf(t.sub(name), "needs ready = \"notify\": only a process that speaks sd_notify can report in time")
		case name == "start_timeout":
			s.StartTimeout = d
		default:
			s.Watchdog = d
		}
	}
}

// identity resolves user, group and supplementary groups.
func (c *checker) identity(t table, s *Service) {
	if _, ok := t.m["user"]; !ok {
		c.errorf(t.sub("user"), "is required")
	}
	a, userOK := c.userValue(t, "user")
	if userOK {
		s.User, s.UID, s.GID, s.Home = a.name, a.uid, a.gid, a.home
		s.Group = idname.Group(a.gid)
		if a.uid == 0 && !s.allowRoot {
			c.errorf(t.sub("user"), "refusing to run as root; set allow_root = true")
		}
	}
	if v, ok := t.m["group"]; ok {
		if name, gid, ok := c.groupValue(t.sub("group"), v); ok {
			s.Group, s.GID = name, gid
			c.warnRiskyGroup(t.sub("group"), name, gid)
		}
	}
	v, ok := t.m["supplementary_groups"]
	if !ok {
		return
	}
	arr, ok := v.([]any)
	if !ok {
		c.errorf(t.sub("supplementary_groups"), "must be an array of group names or ids, not %s", typeName(v))
		return
	}
	s.Groups = []uint32{}
	for i, e := range arr {
		key := indexKey(t.sub("supplementary_groups"), i)
		if name, gid, ok := c.groupValue(key, e); ok {
			s.Groups = append(s.Groups, gid)
			c.warnRiskyGroup(key, name, gid)
		}
	}
}

// environment fills s.Environment and returns the PATH to look command[0]
// up in.
func (c *checker) environment(t table, s *Service) string {
	path := DefaultPath
	env, ok := c.subTable(t, "environment")
	if !ok {
		return path
	}
	for _, k := range sortedKeys(env.m) {
		key := env.sub(k)
		v, ok := env.m[k].(string)
		switch {
		case !ok:
			c.errorf(key, "must be a string, not %s", typeName(env.m[k]))
		case k == "" || strings.ContainsAny(k, "=\x00"):
			c.errorf(key, "%q is not a valid variable name (empty, or holds '=' or NUL)", k)
		case strings.IndexByte(v, 0) >= 0:
			c.errorf(key, "value contains a NUL byte")
		case slices.Contains(reservedEnv, k):
			c.errorf(key, "%s is set by udsvisor", k)
		default:
			s.Environment = append(s.Environment, k+"="+v)
			if k == "PATH" {
				path = v
			}
		}
	}
	return path
}

// signal reads a signal name as ParseSignal does, or a number: a TOML
// integer or a string of digits.
func (c *checker) signal(t table, name string) (unix.Signal, bool) {
	v, key, ok := t.get(name)
	if !ok {
		return 0, false
	}
	switch v := v.(type) {
	case int64:
		if v > 0 && v < 65 && signalNamed(unix.Signal(v)) {
			return unix.Signal(v), true
		}
		c.errorf(key, "unknown signal %d", v)
		return 0, false
	case string:
		if n, err := strconv.Atoi(v); err == nil && n > 0 && n < 65 && signalNamed(unix.Signal(n)) {
			return unix.Signal(n), true
		}
		sig, err := ParseSignal(v)
		if err != nil {
			c.errorf(key, "%v", err)
			return 0, false
		}
		return sig, true
	}
	c.errorf(key, "must be a signal name like \"SIGTERM\", not %s", typeName(v))
	return 0, false
}

// signalNamed reports whether sig has a name: real-time signals have
// none, and stop_signal refuses them.
func signalNamed(sig unix.Signal) bool { return unix.SignalName(sig) != "" }

// ParseSignal parses a signal name, with or without the SIG prefix and in
// any case: "HUP", "sigusr1", "SIGTERM". The error reads
// `unknown signal "NAME"`. It takes no numbers: stop_signal also accepts
// them (see checker.signal), the control API does not.
func ParseSignal(name string) (unix.Signal, error) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	if sig := unix.SignalNum(n); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", name)
}

// uniqueFDNames refuses two sockets of one service under the same name:
// the service could not tell them apart in LISTEN_FDNAMES.
func (c *checker) uniqueFDNames(s *Service) {
	seen := map[string]*Socket{}
	for _, sock := range s.Sockets {
		if first, ok := seen[sock.Name]; ok {
			c.errorf(sock.Key+".name", "%q is not a valid LISTEN_FDNAMES entry: %s already uses it (sockets are named after the service by default)", sock.Name, first.Key)
			continue
		}
		seen[sock.Name] = sock
	}
}

// openDir warns when the working directory is writable by others: they
// could plant files the service reads or executes relative to it
// (SECURITY-NOTES T20). A missing directory is the launch's business.
func (c *checker) openDir(key, dir string) {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return
	}
	if fi.Mode().Perm()&0o002 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		c.warnf(key, "%s is writable by others", dir)
	}
}
