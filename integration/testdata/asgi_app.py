"""A minimal ASGI app for the integration tests, served by uvicorn --fd 3.

It answers every path with JSON naming the process that served it, so a
test can tell which backend answered and that the proxy reached it.
"""
import json
import os


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = json.dumps({
        "server": "uvicorn",
        "pid": os.getpid(),
        "uid": os.getuid(),
        "path": scope["path"],
    }).encode()
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    })
    await send({"type": "http.response.body", "body": body})
