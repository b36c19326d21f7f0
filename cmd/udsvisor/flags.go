// SPDX-License-Identifier: Apache-2.0

package main

import (
	"flag"
	"fmt"
	"io"
)

// defaultConfig is where up and check look without -c.
const defaultConfig = "/etc/udsvisor/services.toml"

// parseFlags parses args into fs; a bad flag or a stray argument becomes
// a usageError. Help output goes to out.
func parseFlags(fs *flag.FlagSet, args []string, out io.Writer) error {
	fs.SetOutput(out)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// configFlag registers -c (and --config) on fs.
func configFlag(fs *flag.FlagSet) *string {
	p := fs.String("c", defaultConfig, "the services config `file`")
	fs.StringVar(p, "config", defaultConfig, "the services config `file`")
	return p
}
