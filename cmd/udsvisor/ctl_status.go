package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/udsvisor/udsvisor/supervisor/api"
	"github.com/udsvisor/udsvisor/supervisor/control/client"
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
	)
	if len(names) == 0 {
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
			continue
		case err != nil:
			return err
		}
		svcs = append(svcs, s)
		if !isUp(s.State) {
			problems = append(problems, fmt.Sprintf("%s is %s", s.Name, s.State))
		}
	}
	if *asJSON {
		err = printJSON(c.stdout, svcs)
	} else {
		err = printStatus(c.stdout, svcs)
	}
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return notRunningError{problems}
	}
	return nil
}

// isUp reports whether a service in state has, or is about to have, a
// process serving its sockets.
func isUp(state string) bool { return state == "running" || state == "starting" }

func printJSON(w io.Writer, svcs []api.Service) error {
	if svcs == nil {
		svcs = []api.Service{} // [] rather than null for scripts
	}
	b, err := json.MarshalIndent(svcs, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// printStatus writes the services as an aligned table.
func printStatus(w io.Writer, svcs []api.Service) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tPID\tUPTIME\tRESTARTS\tSOCKETS")
	for _, s := range svcs {
		pid, uptime := "-", "-"
		if s.Pid != 0 {
			pid = strconv.Itoa(s.Pid)
			uptime = humanDuration(time.Duration(s.UptimeSeconds * float64(time.Second)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", s.Name, s.State, pid, uptime, s.Restarts, socketList(s.Sockets))
	}
	return tw.Flush()
}

// humanDuration writes d with its two largest units, like 3h12m or 45s:
// an uptime needs no more precision.
func humanDuration(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%dm", s/3600, s%3600/60)
	default:
		return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
	}
}

// socketList writes sockets as name=path or name=address.
func socketList(socks []api.Socket) string {
	if len(socks) == 0 {
		return "-"
	}
	parts := make([]string, len(socks))
	for i, s := range socks {
		where := s.Path
		if where == "" {
			where = s.Address
		}
		parts[i] = s.Name + "=" + where
	}
	return strings.Join(parts, " ")
}
