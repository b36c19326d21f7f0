// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/udsvisor/udsvisor/api"
	"github.com/udsvisor/udsvisor/client"
)

// action is `ctl start|stop|restart|pause|resume NAME...`. Like systemctl it prints
// nothing on success. It goes on past a service the server refused
// (unknown, wrong state), naming each; a failure to reach the server or a
// refused permission stops it, since every other name would fail alike.
func (c *ctl) action(ctx context.Context, verb string, args []string) error {
	fs := c.flags(verb, "NAME...")
	names, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return usageError{fmt.Errorf("%s needs at least one service name", verb)}
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	do := map[string]func(context.Context, string) (api.Service, error){
		"start": cl.Start, "stop": cl.Stop, "restart": cl.Restart,
		"pause": cl.Pause, "resume": cl.Resume,
	}[verb]
	var errs []error
	for _, name := range names {
		if _, err := do(ctx, name); err != nil {
			err = fmt.Errorf("%s %s: %w", verb, name, err)
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Status == http.StatusForbidden {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pair parses `ctl VERB NAME ARG`; anything but two arguments is a usage
// error that shows an example.
func (c *ctl) pair(verb, synopsis, example string, args []string) (name, arg string, err error) {
	pos, err := parseArgs(c.flags(verb, synopsis), args)
	if err != nil {
		return "", "", err
	}
	if len(pos) != 2 {
		return "", "", usageError{fmt.Errorf("%s needs %s, like: %s", verb, synopsis, example)}
	}
	return pos[0], pos[1], nil
}

// signal is `ctl signal NAME SIG`; the server parses SIG.
func (c *ctl) signal(ctx context.Context, args []string) error {
	name, sig, err := c.pair("signal", "NAME SIG", "signal web HUP", args)
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	if _, err := cl.Signal(ctx, name, sig); err != nil {
		return fmt.Errorf("signal %s: %w", name, err)
	}
	return nil
}

// scale is `ctl scale NAME N`; the server checks N's range.
func (c *ctl) scale(ctx context.Context, args []string) error {
	name, count, err := c.pair("scale", "NAME N", "scale web 4", args)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(count)
	if err != nil {
		return usageError{fmt.Errorf("scale %s: %q is not a number of instances", name, count)}
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	if _, err := cl.Scale(ctx, name, n); err != nil {
		return fmt.Errorf("scale %s: %w", name, err)
	}
	return nil
}

// logs is `ctl logs NAME [-n N] [-f]`. With -f it streams until Ctrl-C,
// which ends it successfully, like tail -f.
func (c *ctl) logs(ctx context.Context, args []string) error {
	fs := c.flags("logs", "NAME [-n N] [-f] [--json]")
	n := fs.Int("n", 10, "print the last `N` lines; 0 prints every line kept")
	follow := fs.Bool("f", false, "then print new lines as they come, until interrupted")
	asJSON := fs.Bool("json", false, "print each line as a JSON object (time, pid, stream, line as written)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{errors.New("logs needs exactly one service name")}
	}
	if *n < 0 {
		return usageError{fmt.Errorf("-n %d: must be 0 or more", *n)}
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	if *follow {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	name := pos[0]
	// Lines of a service of several instances name theirs.
	several := false
	if !*asJSON {
		svc, err := cl.Get(ctx, name)
		if err != nil {
			return fmt.Errorf("logs %s: %w", name, err)
		}
		several = len(svc.Processes) > 1
	}
	err = cl.Logs(ctx, name, *n, *follow, func(l api.LogLine) error {
		if *asJSON {
			return writeJSONLine(c.stdout, l)
		}
		_, err := io.WriteString(c.stdout, formatLogLine(name, l, several))
		return err
	})
	if *follow && errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("logs %s: %w", name, err)
	}
	return nil
}

// logTime is RFC 3339 in UTC with milliseconds: lines of one burst share
// their second.
const logTime = "2006-01-02T15:04:05.000Z07:00"

// formatLogLine writes l as "TIME NAME[PID] STREAM: text\n", with
// NAME#INSTANCE for a service of several instances.
func formatLogLine(name string, l api.LogLine, several bool) string {
	if several {
		name += "#" + strconv.Itoa(l.Instance)
	}
	return fmt.Sprintf("%s %s[%d] %s: %s\n", l.Time.UTC().Format(logTime), name, l.Pid, l.Stream, api.Printable(l.Line))
}

// reload is `ctl reload`: it prints what the new config changed.
func (c *ctl) reload(ctx context.Context, args []string) error {
	fs := c.flags("reload", "[--json]")
	asJSON := fs.Bool("json", false, "print what changed as a JSON object")
	res, err := query(ctx, c, fs, args, (*client.Client).Reload)
	if err != nil {
		return err
	}
	if *asJSON {
		err = writeJSONLine(c.stdout, res)
	} else {
		printReload(c.stdout, res)
	}
	if err == nil && len(res.Failed) > 0 {
		err = fmt.Errorf("reload: the new definition of %s did not start; the old one keeps running", strings.Join(res.Failed, ", "))
	}
	return err
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

func printReload(w io.Writer, res api.ReloadResult) {
	for _, row := range []struct {
		label string
		names []string
	}{
		{"added", res.Added}, {"removed", res.Removed},
		{"changed", res.Changed}, {"unchanged", res.Unchanged}, {"failed", res.Failed},
	} {
		list := "none"
		if row.label == "failed" && len(row.names) == 0 {
			continue // only a reload with overlapping restarts can fail one
		}
		if len(row.names) > 0 {
			list = strings.Join(row.names, " ")
		}
		fmt.Fprintf(w, "%-10s %s\n", row.label+":", list)
	}
}

// metrics is `ctl metrics`: the Prometheus text, as GET /metrics gives it.
func (c *ctl) metrics(ctx context.Context, args []string) error {
	text, err := query(ctx, c, c.flags("metrics", ""), args, (*client.Client).Metrics)
	if err != nil {
		return err
	}
	_, err = io.WriteString(c.stdout, text)
	return err
}

// query runs a command that takes no argument and makes one call: it
// parses args with fs, connects, and calls; the call's error is prefixed
// with the command's name.
func query[T any](ctx context.Context, c *ctl, fs *flag.FlagSet, args []string, call func(*client.Client, context.Context) (T, error)) (T, error) {
	var zero T
	pos, err := parseArgs(fs, args)
	if err != nil {
		return zero, err
	}
	if len(pos) > 0 {
		return zero, usageError{fmt.Errorf("%s takes no argument, got %q", fs.Name(), pos[0])}
	}
	cl, err := c.client()
	if err != nil {
		return zero, err
	}
	v, err := call(cl, ctx)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", fs.Name(), err)
	}
	return v, nil
}
