// SPDX-License-Identifier: Apache-2.0

package relay

import (
	"errors"
	"io"
	"net"
)

// pipe copies client to target and target to client until both
// directions reached EOF, passing each EOF on with CloseWrite, so that a
// client that half-closes after its request still gets the whole answer.
// If either direction fails, both connections are closed, which ends the
// other copy too; pipe returns the errors of both directions.
//
// client is a *net.UnixConn or *net.TCPConn (from the service's sockets)
// and target a *net.TCPConn; they are passed to io.Copy unwrapped so that
// the stdlib moves the bytes with splice(2), never through user space
// (Go 1.26, net/splice_linux.go, tcpsock_posix.go):
//   - to the target, io.Copy calls (*TCPConn).ReadFrom, which splices
//     from a *UnixConn of network "unix" (stream) or from a *TCPConn
//     (when the source is a *TCPConn, io.Copy first tries its WriteTo,
//     which falls back to the destination's ReadFrom);
//   - to the client, io.Copy calls the target's (*TCPConn).WriteTo, which
//     splices into a stream *UnixConn, or for a TCP client falls back to
//     the client's ReadFrom, which splices from the TCP target.
//
// (*UnixConn).ReadFrom and WriteTo are the datagram methods, not
// io.ReaderFrom or io.WriterTo, so io.Copy never picks them.
func pipe(client, target net.Conn) error {
	errc := make(chan error, 1) // the one result of the goroutine's direction
	go func() { errc <- half(client, target) }()
	err := half(target, client)
	return errors.Join(err, <-errc)
}

// closeWriter is what *net.TCPConn and *net.UnixConn have for half-close.
type closeWriter interface{ CloseWrite() error }

// half copies src to dst until EOF, then half-closes dst. On an error it
// closes both, so that the copy the other way ends as well.
func half(dst, src net.Conn) error {
	_, err := io.Copy(dst, src)
	if err == nil {
		if cw, ok := dst.(closeWriter); ok {
			err = cw.CloseWrite()
		} else {
			err = errors.New("half-close: " + dst.LocalAddr().Network() + " connection cannot close its write side")
		}
	}
	if err != nil {
		src.Close()
		dst.Close()
	}
	return err
}
