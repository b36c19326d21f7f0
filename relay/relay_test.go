// SPDX-License-Identifier: Apache-2.0

package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/udsvisor/udsvisor/config"
)

// waitLimit bounds every wait on an outcome: generous, because CI
// machines are noisy and a wait that is met returns at once.
const waitLimit = 10 * time.Second

// freePort returns a TCP port on 127.0.0.1 that nothing listens on: one
// the kernel just handed out and was released.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// target listens on 127.0.0.1:port (0 for any) and runs handle for each
// connection until the test ends, when it closes the connections still
// open; it returns the port.
func target(t *testing.T, port int, handle func(*net.TCPConn)) int {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []*net.TCPConn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// echo sends back what it reads, then passes the client's EOF on.
func echo(c *net.TCPConn) {
	if _, err := io.Copy(c, c); err == nil {
		c.CloseWrite()
	}
}

// slurp reads up to EOF, then answers with everything it read: the
// PROXY header included.
func slurp(c *net.TCPConn) {
	b, err := io.ReadAll(c)
	if err == nil {
		c.Write(b)
	}
}

// sockDir is a short directory for Unix sockets: t.TempDir's path, named
// after the test, may not fit in sun_path's 108 bytes.
func sockDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "relay")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// supervisorSocket binds a Unix socket, as the supervisor does, and keeps
// it until the test ends; relayCopy gives Serve its own copy of it.
func supervisorSocket(t *testing.T) *net.UnixListener {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(sockDir(t), "s.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// relayCopy is what a relay process gets: a listener on its own fd of the
// socket, as net.FileListener makes from an inherited fd.
func relayCopy(t *testing.T, ln *net.UnixListener) net.Listener {
	t.Helper()
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tcpListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// running is a Serve running in the background.
type running struct {
	done chan struct{} // closed when Serve returned
	err  error         // Serve's result, once done is closed
}

// serve runs Serve in the background until the test ends; cancel stops
// it.
func serve(t *testing.T, lns []net.Listener, opts Options) (cancel func(), r *running) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r = &running{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = Serve(ctx, lns, opts, zaptest.NewLogger(t))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(waitLimit):
			t.Errorf("Serve did not return within %v of the cancel", waitLimit)
		}
	})
	return cancel, r
}

func dial(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial(ln.Addr().Network(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(waitLimit))
	t.Cleanup(func() { c.Close() })
	return c
}

func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

func closeWrite(t *testing.T, c net.Conn) {
	t.Helper()
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
}

// Data flows both ways through a Unix and a TCP listener of one Serve,
// a megabyte at a time; each side's EOF reaches the other as a
// half-close, so the client still reads the end of the answer after it
// closed its side.
func TestRelayBothWaysWithHalfClose(t *testing.T) {
	port := target(t, 0, echo)
	unixLn, tcpLn := relayCopy(t, supervisorSocket(t)), tcpListener(t)
	serve(t, []net.Listener{unixLn, tcpLn}, Options{Port: port, ConnectTimeout: waitLimit})
	for _, ln := range []net.Listener{unixLn, tcpLn} {
		t.Run(ln.Addr().Network(), func(t *testing.T) {
			c := dial(t, ln)
			if _, err := c.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			if got := readN(t, c, 5); string(got) != "hello" {
				t.Fatalf("first echo %q", got)
			}
			big := make([]byte, 1<<20)
			rand.Read(big)
			werr := make(chan error, 1) // the writer's one result
			go func() {
				_, err := c.Write(big)
				if err == nil {
					err = c.(interface{ CloseWrite() error }).CloseWrite()
				}
				werr <- err
			}()
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read after half-close: %v", err)
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, big) {
				t.Errorf("echoed %d bytes, not the %d sent", len(got), len(big))
			}
		})
	}
}

// A client that connects while the app is still starting waits for it
// in the socket's backlog: Serve accepts nothing until the app listens,
// 300 ms later, so that a process that accepted has an app that answers
// (udsvisor's started rule), and then the client is served.
func TestRelayWaitsForTheAppToListen(t *testing.T) {
	port := freePort(t)
	ln := firstAccept{Listener: relayCopy(t, supervisorSocket(t)), at: new(atomic.Int64)}
	serve(t, []net.Listener{ln}, Options{Port: port, ConnectTimeout: waitLimit})
	c := dial(t, ln)
	if _, err := c.Write([]byte("early")); err != nil {
		t.Fatal(err)
	}
	<-time.After(300 * time.Millisecond) // the app's start-up
	listening := time.Now()
	target(t, port, echo)
	if got := readN(t, c, 5); string(got) != "early" {
		t.Errorf("echo %q", got)
	}
	if at := time.Unix(0, ln.at.Load()); at.Before(listening) {
		t.Errorf("Serve accepted %v before the app listened", listening.Sub(at))
	}
}

// firstAccept records when its first Accept returned a connection.
type firstAccept struct {
	net.Listener
	at *atomic.Int64 // UnixNano; 0 before
}

func (l firstAccept) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.at.CompareAndSwap(0, time.Now().UnixNano())
	}
	return c, err
}

// Cancelled before the app ever listened, Serve returns at once, having
// accepted nothing and closed its listeners.
func TestRelayCancelBeforeTheAppListens(t *testing.T) {
	ln := closeSignal{relayCopy(t, supervisorSocket(t)), make(chan struct{})}
	cancel, r := serve(t, []net.Listener{ln}, Options{Port: freePort(t), ConnectTimeout: waitLimit})
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("Serve: %v", r.err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Serve did not return after cancel")
	}
	<-ln.closed
}

// When the app stops listening after it did, a client is closed after
// ConnectTimeout, not before, and Serve goes on accepting.
func TestRelayGivesUpAfterConnectTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	app, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ln := relayCopy(t, supervisorSocket(t))
	serve(t, []net.Listener{ln}, Options{Port: app.Addr().(*net.TCPAddr).Port, ConnectTimeout: timeout})
	if c, err := app.Accept(); err != nil { // the relay's look at the port
		t.Fatal(err)
	} else {
		c.Close()
	}
	app.Close()
	for range 2 {
		start := time.Now()
		c := dial(t, ln)
		n, err := c.Read(make([]byte, 1))
		if n != 0 || err != io.EOF {
			t.Fatalf("read: %d bytes, %v; want EOF", n, err)
		}
		if waited := time.Since(start); waited < timeout {
			t.Errorf("client closed after %v, before the connect timeout of %v", waited, timeout)
		}
	}
}

// The app reads the PROXY header first, then the client's bytes: v1 and
// v2, for a client of a Unix and of a TCP listener.
func TestRelayProxyHeaders(t *testing.T) {
	port := target(t, 0, slurp)
	sup := supervisorSocket(t)
	path := sup.Addr().String()
	for _, tc := range []struct {
		proxy config.ProxyProtocol
		tcp   bool
		want  func(client net.Conn) []byte
	}{
		{config.ProxyV1, false, func(net.Conn) []byte { return []byte("PROXY UNKNOWN\r\n") }},
		{config.ProxyV1, true, func(c net.Conn) []byte {
			return fmt.Appendf(nil, "PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\n",
				c.LocalAddr().(*net.TCPAddr).Port, c.RemoteAddr().(*net.TCPAddr).Port)
		}},
		{config.ProxyV2, false, func(net.Conn) []byte {
			return cat(sig, []byte{0x21, 0x31, 0x00, 0xD8}, sunPath(""), sunPath(path))
		}},
		{config.ProxyV2, true, func(c net.Conn) []byte {
			h := cat(sig, []byte{0x21, 0x11, 0x00, 0x0C, 127, 0, 0, 1, 127, 0, 0, 1})
			h = binary.BigEndian.AppendUint16(h, uint16(c.LocalAddr().(*net.TCPAddr).Port))
			return binary.BigEndian.AppendUint16(h, uint16(c.RemoteAddr().(*net.TCPAddr).Port))
		}},
	} {
		var ln net.Listener
		if tc.tcp {
			ln = tcpListener(t)
		} else {
			ln = relayCopy(t, sup)
		}
		t.Run(tc.proxy.String()+"/"+ln.Addr().Network(), func(t *testing.T) {
			serve(t, []net.Listener{ln}, Options{Port: port, Proxy: tc.proxy, ConnectTimeout: waitLimit})
			c := dial(t, ln)
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			closeWrite(t, c)
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if want := append(tc.want(c), "ping"...); !bytes.Equal(got, want) {
				t.Errorf("the app read\n% x\nwant\n% x", got, want)
			}
		})
	}
}

// closeSignal is a listener that says when Serve closed it.
type closeSignal struct {
	net.Listener
	closed chan struct{}
}

func (l closeSignal) Close() error {
	err := l.Listener.Close()
	close(l.closed)
	return err
}

// Once ctx is done, Serve accepts nothing more: a new client waits in the
// socket's backlog, which the supervisor keeps, and the next Serve on
// another copy of the socket serves it. The connection in flight goes on
// until it ends, and only then does Serve return.
func TestRelayCancelStopsAcceptingAndFinishesInFlight(t *testing.T) {
	port := target(t, 0, echo)
	sup := supervisorSocket(t)
	first := closeSignal{relayCopy(t, sup), make(chan struct{})}
	cancel, r := serve(t, []net.Listener{first}, Options{Port: port, ConnectTimeout: waitLimit})

	inFlight := dial(t, sup)
	roundTrip := func(c net.Conn, msg string) {
		t.Helper()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, c, len(msg)); string(got) != msg {
			t.Fatalf("echo %q, want %q", got, msg)
		}
	}
	roundTrip(inFlight, "before")
	cancel()
	<-first.closed

	queued := dial(t, sup) // accepted by the kernel into the backlog only
	roundTrip(inFlight, "after")
	select {
	case <-r.done:
		t.Fatalf("Serve returned (%v) with a connection in flight", r.err)
	default:
	}
	closeWrite(t, inFlight)
	if n, err := inFlight.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("in-flight read after half-close: %d bytes, %v; want EOF", n, err)
	}
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("Serve: %v", r.err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Serve did not return after its last connection ended")
	}

	serve(t, []net.Listener{relayCopy(t, sup)}, Options{Port: port, ConnectTimeout: waitLimit})
	roundTrip(queued, "queued")
	queued.Close() // before the cleanups, which wait for the second Serve
}

// A listener that breaks under Serve (here: closed by someone else) ends
// it with the listener's error, after the other listeners are closed.
func TestRelayListenerFailure(t *testing.T) {
	port := target(t, 0, echo)
	broken := tcpListener(t)
	other := closeSignal{tcpListener(t), make(chan struct{})}
	_, r := serve(t, []net.Listener{broken, other}, Options{Port: port, ConnectTimeout: waitLimit})
	broken.Close()
	select {
	case <-r.done:
		if !errors.Is(r.err, net.ErrClosed) {
			t.Errorf("Serve: %v, want the closed listener's error", r.err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Serve did not return after a listener failed")
	}
	<-other.closed
}

func TestRelayServeRejectsBadOptions(t *testing.T) {
	ln := tcpListener(t)
	for _, tc := range []struct {
		lns  []net.Listener
		opts Options
	}{
		{[]net.Listener{ln}, Options{Port: 0, ConnectTimeout: time.Second}},
		{[]net.Listener{ln}, Options{Port: 65536, ConnectTimeout: time.Second}},
		{[]net.Listener{ln}, Options{Port: 80}},
		{nil, Options{Port: 80, ConnectTimeout: time.Second}},
	} {
		if err := Serve(context.Background(), tc.lns, tc.opts, zaptest.NewLogger(t)); err == nil {
			t.Errorf("Serve(%d listeners, %+v) succeeded", len(tc.lns), tc.opts)
		}
	}
}
