// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/client"
)

// status is `ctl status [NAME...] [--json]`.
func (c *ctl) status(ctx context.Context, args []string) error {
	fs := c.flags("status", "[NAME...] [--json]")
	asJSON := fs.Bool("json", false, "print the services as a JSON array")
	names, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	var (
		svcs     []api.Service
		problems []string
		unknown  bool
	)
	if len(names) == 1 && names[0] == "all" {
		// A service may be called "all" too; the listing shows it with
		// the others.
		names = nil
	}
	if len(names) == 0 {
		if !*asJSON {
			return cl.ListTable(ctx, c.stdout)
		}
		if svcs, err = cl.List(ctx); err != nil {
			return err
		}
	}
	for _, name := range names {
		s, err := cl.Get(ctx, name)
		var ae *client.APIError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
			problems = append(problems, fmt.Sprintf("unknown service %q", name))
			unknown = true
			continue
		case err != nil:
			return err
		}
		svcs = append(svcs, s)
		if !isUp(s.State) {
			problems = append(problems, fmt.Sprintf("%s is %s", s.Name, s.State))
		}
	}
	switch {
	case *asJSON:
		err = printJSON(c.stdout, svcs)
	case len(svcs) > 0: // no header above nothing
		err = api.WriteTable(c.stdout, svcs)
	}
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return notRunningError{problems: problems, unknown: unknown}
	}
	return nil
}

// isUp reports whether a service in state has, or is about to have, a
// process serving its sockets (a waiting on-demand service has one as
// soon as a connection comes). The names are supervisor's, which the API
// passes on as strings; they are spelled out here so that ctl does not
// link the Linux-only supervisor (TestIsUpStates keeps them in step).
func isUp(state string) bool {
	switch state {
	case "starting", "running", "reloading", "waiting":
		return true
	}
	return false
}

func printJSON(w io.Writer, svcs []api.Service) error {
	if svcs == nil {
		svcs = []api.Service{} // [] rather than null for scripts
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(svcs)
}
