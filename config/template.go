// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Placeholders in command and environment name a socket of the service,
// for servers with an inheritance convention of their own (PHP-FPM's
// FPM_SOCKETS, Puma's -b, nginx's NGINX variable):
//
//	%{socket.NAME.fd}       the socket's fd in the command: 0 (stdin = true) or 3, 4, ...
//	%{socket.NAME.path}     its path (Unix sockets only)
//	%{socket.NAME.address}  its path, or its TCP address as host:port
//
// NAME is the socket's name (LISTEN_FDNAMES), dots allowed. Only
// "%{socket." starts a placeholder, so that other text with %{ (curl's
// -w '%{http_code}', log formats) stays as it is; %%{socket. is a literal
// %{socket.. They are expanded when the config is read, so that check
// shows the argv and environment the command gets.

// placeholderFields are what a socket placeholder can give.
var placeholderFields = []string{"fd", "path", "address"}

// expandTemplates expands the placeholders of s's command (but its
// program) and environment values; t is the service's table.
func (c *checker) expandTemplates(t table, s *Service) {
	key := t.sub("command")
	for i, arg := range s.Command {
		if i == 0 {
			if strings.Contains(arg, "%{socket.") {
				c.errorf(indexKey(key, 0), "the program's path cannot hold a placeholder")
			}
			continue
		}
		if v, err := expand(arg, s); err != nil {
			c.errorf(indexKey(key, i), "%v", err)
		} else {
			s.Command[i] = v
		}
	}
	env := t.sub("environment")
	for i, kv := range s.Environment {
		k, v, _ := strings.Cut(kv, "=")
		if x, err := expand(v, s); err != nil {
			c.errorf(joinKey(env, k), "%v", err)
		} else {
			s.Environment[i] = k + "=" + x
		}
	}
}

// expand replaces the placeholders of text with the values of s's
// sockets.
func expand(text string, s *Service) (string, error) {
	const open = "%{socket."
	if !strings.Contains(text, open) {
		return text, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(text, open)
		if i < 0 {
			b.WriteString(text)
			return b.String(), nil
		}
		if i > 0 && text[i-1] == '%' {
			// %%{socket. is a literal %{socket..
			b.WriteString(text[:i-1])
			b.WriteString(open)
			text = text[i+len(open):]
			continue
		}
		b.WriteString(text[:i])
		end := strings.IndexByte(text[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("%q: a %%{socket. without its }; write %%%%{socket. for a literal one", text[i:])
		}
		v, err := placeholder(text[i+2:i+end], s)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
		text = text[i+end+1:]
	}
}

// placeholder returns the value of the placeholder whose inside is ref,
// "socket.NAME.FIELD"; NAME may hold dots, FIELD does not.
func placeholder(ref string, s *Service) (string, error) {
	rest, _ := strings.CutPrefix(ref, "socket.")
	j := strings.LastIndexByte(rest, '.')
	if j <= 0 {
		return "", fmt.Errorf("%%{%s}: want %%{socket.NAME.fd}, %%{socket.NAME.path} or %%{socket.NAME.address}", ref)
	}
	name, field := rest[:j], rest[j+1:]
	var sock *Socket
	var names []string
	for _, so := range s.Sockets {
		names = append(names, so.Name)
		if so.Name == name {
			sock = so
		}
	}
	if sock == nil {
		return "", fmt.Errorf("%%{%s}: the service has no socket named %q (its sockets: %s)", ref, name, orNone(names))
	}
	switch field {
	case "fd":
		return strconv.Itoa(sock.FD), nil
	case "path":
		if !sock.IsUnix() {
			return "", fmt.Errorf("%%{%s}: socket %q is TCP and has no path; use .address", ref, sock.Name)
		}
		return sock.Path, nil
	case "address":
		return sock.String(), nil
	default:
		return "", fmt.Errorf("%%{%s}: unknown field %q; want one of %s", ref, field, strings.Join(placeholderFields, ", "))
	}
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
