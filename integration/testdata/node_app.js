// A minimal Node.js app for the integration tests: it serves the socket
// udsvisor passed at fd 3 (LISTEN_FDS) and answers every path with JSON
// naming the process that served it, as the Python apps do.
'use strict';
const http = require('http');

if (process.env.LISTEN_PID !== String(process.pid) || process.env.LISTEN_FDS !== '1') {
  console.error('not socket-activated: LISTEN_PID', process.env.LISTEN_PID, 'LISTEN_FDS', process.env.LISTEN_FDS);
  process.exit(1);
}
const server = http.createServer((req, res) => {
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify({ server: 'node', pid: process.pid, uid: process.getuid(), path: req.url }));
});
server.listen({ fd: 3 });
// Stop accepting, finish what is in flight, then exit.
process.on('SIGTERM', () => server.close(() => process.exit(0)));
