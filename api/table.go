// SPDX-License-Identifier: Apache-2.0

package api

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TableType is the media type of the status table: GET /v1/services
// with "Accept: text/plain" answers with the table `udsvisor ctl status`
// prints, rendered by the server. With 1,000 services, encoding,
// sending and decoding the JSON costs more than everything else ctl
// status does; the table is a tenth of the bytes and needs no decoding.
const TableType = "text/plain; charset=utf-8"

// WriteTable writes svcs as the aligned status table: name, state, pid,
// uptime, restarts and sockets, one service per line, and the STATUS= text
// of services that send one (ready = "notify") as a last column when any
// does. A service of several processes is followed by a line per process,
// named NAME#INSTANCE (a process on its way out shows "leaving"). Each column but the last is as wide as its widest cell plus two
// spaces (what text/tabwriter does, in one pass over the rows rather than
// a cell buffer per cell: this runs for every ctl status, over every
// service).
func WriteTable(w io.Writer, svcs []Service) error {
	head := []string{"NAME", "STATE", "PID", "UPTIME", "RESTARTS", "SOCKETS"}
	if slices.ContainsFunc(svcs, func(s Service) bool { return s.StatusText != "" }) {
		head = append(head, "STATUS")
	}
	cols := len(head)
	rows := make([][]string, 0, len(svcs)+1)
	rows = append(rows, head)
	for _, s := range svcs {
		pid, uptime := "-", "-"
		if s.Pid != 0 {
			pid = strconv.Itoa(s.Pid)
			uptime = humanDuration(time.Duration(s.UptimeSeconds * float64(time.Second)))
		}
		row := []string{s.Name, s.State, pid, uptime, strconv.Itoa(s.Restarts), socketList(s.Sockets), s.StatusText}
		rows = append(rows, row[:cols])
		if len(s.Processes) < 2 {
			continue
		}
		for _, p := range s.Processes {
			pid, uptime, state := "-", "-", p.State
			if p.Pid != 0 {
				pid = strconv.Itoa(p.Pid)
				if p.StartedAt != nil {
					uptime = humanDuration(time.Since(*p.StartedAt))
				}
			}
			if p.Leaving {
				state += " (leaving)"
			}
			name := s.Name + "#" + strconv.Itoa(p.Instance)
			row := []string{name, state, pid, uptime, strconv.Itoa(p.Restarts), "", p.StatusText}
			rows = append(rows, row[:cols])
		}
	}
	width := make([]int, cols-1)
	size := 0
	for _, r := range rows {
		for i := range width {
			width[i] = max(width[i], len(r[i]))
		}
		size += len(r[cols-1]) + 1
	}
	for _, wd := range width {
		size += len(rows) * (wd + 2)
	}
	b := make([]byte, 0, size)
	for _, r := range rows {
		for i, wd := range width {
			b = append(b, r[i]...)
			for n := len(r[i]); n < wd+2; n++ {
				b = append(b, ' ')
			}
		}
		b = append(b, r[cols-1]...)
		for len(b) > 0 && b[len(b)-1] == ' ' { // an empty STATUS
			b = b[:len(b)-1]
		}
		b = append(b, '\n')
	}
	_, err := w.Write(b)
	return err
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
func socketList(socks []Socket) string {
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
