package api

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// TableType is the media type of the status table: GET /v1/services
// with "Accept: text/plain" answers with the table `udsvisor ctl status`
// prints, rendered by the server. With 1,000 services, encoding,
// sending and decoding the JSON costs more than everything else ctl
// status does; the table is a tenth of the bytes and needs no decoding.
const TableType = "text/plain; charset=utf-8"

// WriteTable writes svcs as the aligned status table: name, state, pid,
// uptime, restarts and sockets, one service per line.
func WriteTable(w io.Writer, svcs []Service) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	io.WriteString(tw, "NAME\tSTATE\tPID\tUPTIME\tRESTARTS\tSOCKETS\n")
	var line []byte
	for _, s := range svcs {
		line = append(line[:0], s.Name...)
		line = append(line, '\t')
		line = append(line, s.State...)
		line = append(line, '\t')
		if s.Pid != 0 {
			line = strconv.AppendInt(line, int64(s.Pid), 10)
			line = append(line, '\t')
			line = append(line, HumanDuration(time.Duration(s.UptimeSeconds*float64(time.Second)))...)
		} else {
			line = append(line, "-\t-"...)
		}
		line = append(line, '\t')
		line = strconv.AppendInt(line, int64(s.Restarts), 10)
		line = append(line, '\t')
		line = append(line, socketList(s.Sockets)...)
		line = append(line, '\n')
		if _, err := tw.Write(line); err != nil {
			return err
		}
	}
	return tw.Flush()
}

// HumanDuration writes d with its two largest units, like 3h12m or 45s:
// an uptime needs no more precision.
func HumanDuration(d time.Duration) string {
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
