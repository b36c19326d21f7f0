"""A minimal WSGI app for the integration tests, served by gunicorn.

gunicorn 20.1 takes the socket from LISTEN_FDS by itself, so it runs with
no --bind. Every path answers with JSON naming the worker that served it.
"""
import json
import os


def app(environ, start_response):
    body = json.dumps({
        "server": "gunicorn",
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "uid": os.getuid(),
        "path": environ.get("PATH_INFO", ""),
    }).encode()
    start_response("200 OK", [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
    ])
    return [body]
