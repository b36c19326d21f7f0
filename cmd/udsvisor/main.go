// SPDX-License-Identifier: Apache-2.0

// Command udsvisor is a process supervisor that owns its services'
// sockets: it binds Unix (or TCP) sockets with exact owner, group and
// mode, starts each service as its own user with the sockets passed the
// systemd way, and restarts services without ever closing the sockets.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/udsvisor/udsvisor/config"
)

const usage = `usage: udsvisor <command> [flags]

commands:
  up     -c FILE   bind the sockets and supervise the services of FILE
  check  -c FILE [-q]  validate FILE and print what up would create and start
                   (-q: nothing on success; warnings go to stderr)
  ctl    [-s SOCKET] status|start|stop|restart|pause|resume|scale|signal|logs|reload|upgrade|metrics ...
                   talk to a running udsvisor through its control socket
  proxy  nginx|apache|caddy|haproxy -c FILE [--listen ADDR] [--server-name NAME]
         [--proxy-user USER] [--strict] [--chroot DIR]
                   print the reverse-proxy config for the services' routes
  demo             the demo HTTP backend (run it under udsvisor up)
  version          print the version, commit and Go version
  help             print this help

FILE defaults to /etc/udsvisor/services.toml.
`

// version and commit are set at build time with
// -ldflags "-X main.version=… -X main.commit=…" (packaging/release/build.sh).
// A plain go build leaves them as they are here; the commit then comes
// from the VCS stamp of the build info (see buildCommit).
var version = "dev"
var commit = "unknown"

// The main goroutine keeps the main thread: in up it serves the launcher
// there (privdrop.Launcher.ServeMain), the one thread an upgrade's exec
// keeps.
func init() { runtime.LockOSThread() }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one subcommand and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "up":
		err = runUp(args[1:], stderr)
	case "check":
		err = runCheck(args[1:], stdout, stderr)
	case "ctl":
		err = runCtl(args[1:], stdout, stderr)
	case "proxy":
		err = runProxy(args[1:], stdout, stderr)
	case "demo":
		err = runDemo(args[1:])
	case upgradeCheckArg:
		err = runUpgradeCheck(args[1:], stdout)
	case relayArg:
		err = runRelay(args[1:], stderr)
	case "version", "--version":
		printVersion(stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "udsvisor: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	return report(err, args[0], stderr)
}

// usageError is a bad command line: exit code 2, like flag's own errors.
type usageError struct{ error }

// report prints err and picks the exit code: 0 for none, 2 for a bad
// command line, the error's own code when it has one (ctl status: 3 when
// a named service is not running, like systemctl), 1 for everything else. Config errors are printed one per
// line as file:line: key: message, so editors can jump to them.
func report(err error, cmd string, stderr io.Writer) int {
	var ue usageError
	var ce config.Errors
	var coded interface{ ExitCode() int }
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "udsvisor %s: %v\n", cmd, ue.error)
		return 2
	case errors.As(err, &ce):
		for _, e := range ce {
			fmt.Fprintln(stderr, e)
		}
		fmt.Fprintf(stderr, "udsvisor: %d error(s) in the config; nothing was changed\n", len(ce))
		return 1
	case errors.As(err, &coded):
		fmt.Fprintf(stderr, "udsvisor: %v\n", err)
		return coded.ExitCode()
	default:
		fmt.Fprintf(stderr, "udsvisor: %v\n", err)
		return 1
	}
}
