// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/udsvisor/udsvisor/config"
	"github.com/udsvisor/udsvisor/proxyconf"
)

const proxyUsage = "usage: udsvisor proxy nginx|apache|caddy|haproxy [-c FILE] [--proxy-user USER] [--listen ADDR] [--server-name NAME] [--chroot DIR] [--strict]"

// runProxy prints the reverse-proxy config for the routes of the config
// on stdout, and on stderr a warning for every routed socket the proxy's
// user could not connect to; warnings keep exit status 0 unless --strict.
// The config is written whole or not at all, so a failure never leaves
// half a file behind a shell redirection.
func runProxy(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), proxyUsage)
		fs.PrintDefaults()
	}
	cfgPath := configFlag(fs)
	proxyUser := fs.String("proxy-user", "", "the `user` the proxy's workers run as, for the permission check (default: www-data for nginx and apache, caddy for caddy, haproxy for haproxy, as Debian runs them)")
	listen := fs.String("listen", "80", "where the proxy listens: a `port` or IP:PORT")
	serverName := fs.String("server-name", "", "server `name` of the routes without a host (default: they answer every host no other server names)")
	chroot := fs.String("chroot", "", "haproxy only: the `directory` HAProxy is chrooted to (Debian: /var/lib/haproxy); socket paths are written relative to it")
	strict := fs.Bool("strict", false, "exit 1 when the proxy user could not connect to a socket")
	// The kind may come before or after the flags.
	kind, rest := "", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		kind, rest = args[0], args[1:]
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if kind == "" && fs.NArg() > 0 {
		kind = fs.Arg(0)
		if err := parseFlags(fs, fs.Args()[1:], stderr); err != nil {
			return err
		}
	} else if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	switch {
	case kind == "":
		return usageError{fmt.Errorf("which proxy? %s", strings.Join(proxyconf.Kinds, ", "))}
	case !slices.Contains(proxyconf.Kinds, kind):
		return usageError{fmt.Errorf("unknown proxy %q; use one of %s", kind, strings.Join(proxyconf.Kinds, ", "))}
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	opts := proxyconf.Options{Listen: *listen, ServerName: *serverName, Chroot: *chroot}
	if err := proxyconf.Generate(&out, kind, cfg, opts); err != nil {
		return fmt.Errorf("proxy %s: %w", kind, err)
	}
	who := *proxyUser
	if who == "" {
		who = proxyconf.DefaultUser(kind)
	}
	warnings, err := proxyconf.Check(cfg, kind, who)
	if err != nil {
		if *proxyUser == "" {
			// Generating for another machine: say where the name came from.
			return fmt.Errorf("proxy %s: %w (the default for %s); name the user %s runs as with --proxy-user", kind, err, kind, kind)
		}
		return fmt.Errorf("proxy %s: %w", kind, err)
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if *strict && len(warnings) > 0 {
		// Nothing on stdout, so that `proxy --strict > site.conf` in a
		// deploy script cannot install a config that would answer 502.
		return fmt.Errorf("proxy %s: %d warning(s) about %s's access, and --strict is set; no config was written", kind, len(warnings), who)
	}
	if _, err := stdout.Write(out.Bytes()); err != nil {
		return fmt.Errorf("proxy %s: write: %w", kind, err)
	}
	return nil
}
