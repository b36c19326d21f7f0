// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/udsvisor/udsvisor/client"
	"github.com/udsvisor/udsvisor/config"
)

const ctlUsage = `usage: udsvisor ctl [-s SOCKET] [-c FILE] <command> [args]

commands:
  status [NAME...|all] [--json]  show the services; exit 3 if a NAME is not running, 4 if unknown
  start NAME...              start the services
  stop NAME...               stop the services, waiting for their processes
  restart NAME...            restart the services
  pause NAME...              stop the services' processes, keeping their sockets: connections wait
  resume NAME...             start paused services; the waiting connections are served
  scale NAME N               run N instances of the service (1 to 256) until a reload changes it
  signal NAME SIG            send SIG (HUP, USR1, ...) to the service's process group
  logs NAME [-n N] [-f] [--json]  print the last N lines (default 10, 0: all kept); -f follows
  reload [--json]            re-read the config udsvisor was started with
  upgrade [-timeout D] [--json]  re-execute the udsvisor binary now on disk in place,
                             keeping every process and socket; exit 1 if it did not take over
  metrics                    print the Prometheus metrics

SOCKET defaults to control_socket in FILE (default /etc/udsvisor/services.toml)
when FILE can be loaded, else /run/udsvisor/control.sock. -s and -c may also
follow the command.
`

// notRunningError is `ctl status NAME` finding NAME unknown or not
// running. Like systemctl and the LSB status codes it exits 4 when a
// service is unknown and 3 when one is not running, so that scripts can
// tell both from a failure to ask (1).
type notRunningError struct {
	problems []string
	unknown  bool // some name is no service
}

func (e notRunningError) Error() string {
	msg := e.problems[0]
	for _, p := range e.problems[1:] {
		msg += "; " + p
	}
	return msg
}

// ExitCode is the process exit status main reports for e.
func (e notRunningError) ExitCode() int {
	if e.unknown {
		return 4
	}
	return 3
}

// runCtl is `udsvisor ctl`: it talks to a running `udsvisor up` through
// its control socket, and only through package client.
func runCtl(args []string, stdout, stderr io.Writer) error {
	c := &ctl{defaultConfig: defaultConfig, stdout: stdout, stderr: stderr}
	return c.run(context.Background(), args)
}

// ctl is one `udsvisor ctl` invocation.
type ctl struct {
	// defaultConfig is read for the control socket when -c is not given;
	// a field so that tests do not depend on the machine's config.
	defaultConfig  string
	stdout, stderr io.Writer
	socket, config setString
}

// setString is a string flag that remembers whether it was given, since
// an explicit -c that fails to load is an error and a default one is not.
type setString struct {
	v   string
	set bool
}

func (s *setString) String() string { return s.v }
func (s *setString) Set(v string) error {
	s.v, s.set = v, true
	return nil
}

// connFlags registers -s and -c on fs; every command accepts them, so
// that `ctl status -s X` works as well as `ctl -s X status`.
func (c *ctl) connFlags(fs *flag.FlagSet) {
	for _, name := range []string{"s", "socket"} {
		fs.Var(&c.socket, name, "the control `socket` of udsvisor")
	}
	for _, name := range []string{"c", "config"} {
		fs.Var(&c.config, name, "the services config `file` that names the control socket")
	}
}

func (c *ctl) run(ctx context.Context, args []string) error {
	c.config.v = c.defaultConfig
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	fs.SetOutput(c.stdout)
	fs.Usage = func() { fmt.Fprint(fs.Output(), ctlUsage) }
	c.connFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() == 0 {
		fmt.Fprint(c.stderr, ctlUsage)
		return usageError{errors.New("missing command")}
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "status":
		return c.status(ctx, rest)
	case "start", "stop", "restart", "pause", "resume":
		return c.action(ctx, cmd, rest)
	case "signal":
		return c.signal(ctx, rest)
	case "scale":
		return c.scale(ctx, rest)
	case "logs":
		return c.logs(ctx, rest)
	case "reload":
		return c.reload(ctx, rest)
	case "upgrade":
		return c.upgrade(ctx, rest)
	case "metrics":
		return c.metrics(ctx, rest)
	case "help":
		fmt.Fprint(c.stdout, ctlUsage)
		return nil
	default:
		return usageError{fmt.Errorf("unknown command %q (try udsvisor ctl help)", cmd)}
	}
}

// flags returns the flag set of command cmd, whose positional arguments
// read synopsis.
func (c *ctl) flags(cmd, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(c.stdout)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: udsvisor ctl %s %s\n", cmd, synopsis)
		fs.PrintDefaults()
	}
	c.connFlags(fs)
	return fs
}

// parseArgs parses fs's flags wherever they stand among args (`status web
// --json`) and returns the other arguments in order; everything after
// "--" is an argument.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// client connects to the socket of -s, else the one the config names.
func (c *ctl) client() (*client.Client, error) {
	sock, err := c.socketPath()
	if err != nil {
		return nil, err
	}
	return client.New(sock), nil
}

// socketPath picks the control socket. An explicit -c must load; the
// default config may be missing or unreadable (an operator outside root
// usually cannot read it), and then the default socket is the answer.
func (c *ctl) socketPath() (string, error) {
	if c.socket.set {
		if c.socket.v == "" {
			return "", usageError{errors.New("-s needs a socket path")}
		}
		return c.socket.v, nil
	}
	cfg, err := config.Load(c.config.v)
	switch {
	case err == nil:
		return cfg.Supervisor.ControlSocket, nil
	case c.config.set:
		return "", err
	default:
		return config.DefaultControlSocket, nil
	}
}
