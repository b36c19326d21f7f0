# A minimal Rack app for the integration tests: Puma serves it on the
# socket udsvisor passed (LISTEN_FDS), and it answers every path with JSON
# naming the process that served it, as the other test apps do. Puma
# reports the socket it took over in its log ("Listening on unix://...").
require 'json'

run lambda { |env|
  body = JSON.generate(server: 'puma', pid: Process.pid, uid: Process.uid, path: env['PATH_INFO'])
  [200, { 'content-type' => 'application/json' }, [body]]
}
