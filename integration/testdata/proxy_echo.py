# A TCP-only app for the relay's PROXY protocol test: it listens on
# 127.0.0.1:PORT (argv[1]) and answers each connection with the first
# line it received, the PROXY header the relay sent, as an HTTP body.
import socket
import sys

server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = server.accept()
    with conn:
        line = conn.makefile("rb").readline().rstrip(b"\r\n")
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(line) + line)
