// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"testing"
)

// FuzzParse: Parse never panics, and always returns exactly one of a
// config or a non-empty Errors. The locator must also give a line to
// every key the decoder accepted, or messages would lose their line.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		base,
		sock(`path = "/run/udsv-config-test/a.sock"` + "\nmode = \"0660\"\n[[services.api.sockets]]\nname = \"b\"\nlisten = \"127.0.0.1:80\"\nmdoe = 1\n"),
		"[supervisor]\ncontrol_socket = \"/run/udsvisor/control.sock\"\ncontrol_mode = 660\n",
		"[services.\"a.b\"]\ncommand = [\n \"true\", # c\n]\nuser = 1\nenvironment = { A = \"\"\"\nx = 1\n[y]\n\"\"\" }\n",
		"[[a]]\n[[a.b]]\n[a.c]\nd.e = [{f = 1}, {g = '''\nh = 2'''}]\n",
		"a = {b=1,\nc=2}\n",
		"sockets = [{path=\"/tmp/x\"}]\n[services.x]\nsockets = [{listen=\":80\"},{listen=\"[::]:80\", public=true}]\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		cfg, err := Parse("services.toml", []byte(src))
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v", cfg, err)
		}
		var es Errors
		if err != nil && (!errors.As(err, &es) || len(es) == 0) {
			t.Fatalf("error %T %v is not a non-empty Errors", err, err)
		}
		assertAllLocated(t, src)
	})
}
