// SPDX-License-Identifier: Apache-2.0

//go:build linux

package peer

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// xmlrpcMember is one member of an XML-RPC struct; only scalar values
// are read (what supervisord's getProcessInfo returns).
type xmlrpcMember struct {
	Name  string `xml:"name"`
	Value struct {
		String  *string `xml:"string"`
		Int     *string `xml:"int"`
		I4      *string `xml:"i4"`
		Boolean *string `xml:"boolean"`
		Text    string  `xml:",chardata"` // a string may come untyped
	} `xml:"value"`
}

func (m xmlrpcMember) text() string {
	v := m.Value
	for _, p := range []*string{v.String, v.Int, v.I4, v.Boolean} {
		if p != nil {
			return *p
		}
	}
	return strings.TrimSpace(v.Text)
}

// parseXMLRPCStruct reads a methodResponse whose one value is a struct,
// and returns its members as strings; a fault is an error.
func parseXMLRPCStruct(r io.Reader) (map[string]string, error) {
	var resp struct {
		Members []xmlrpcMember `xml:"params>param>value>struct>member"`
		Fault   []xmlrpcMember `xml:"fault>value>struct>member"`
	}
	if err := xml.NewDecoder(io.LimitReader(r, 1<<20)).Decode(&resp); err != nil {
		return nil, fmt.Errorf("bad XML-RPC answer: %w", err)
	}
	if len(resp.Fault) > 0 {
		f := map[string]string{}
		for _, m := range resp.Fault {
			f[m.Name] = m.text()
		}
		return nil, fmt.Errorf("fault %s: %s", f["faultCode"], f["faultString"])
	}
	out := map[string]string{}
	for _, m := range resp.Members {
		out[m.Name] = m.text()
	}
	return out, nil
}
