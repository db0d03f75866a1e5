"""The Python upstream: a bare ASGI app answering like nginx does (fixed bodies), plus slow streams nginx cannot send.

    /v1/chat/completions         the fixed chat completion (the fallback when nginx is not installed)
    /stream/v1/chat/completions  the 200-chunk stream, all at once
    /short/v1/chat/completions   a 20-chunk stream, all at once (the leak check)
    /slow/v1/chat/completions    one chunk a second until the client leaves (keeps 10,000 streams open)

Run: python -m bench.upstream_app PORT  (uvicorn with uvloop and httptools).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from bench.payloads import COMPLETION_BODY, SHORT_STREAM_BODY, STREAM_BODY, stream_frames

_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_SLOW_FRAMES = stream_frames(600)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    more = True
    while more:  # read the whole request body before answering, as a real server does
        message = await receive()
        more = message.get("more_body", False)
    path = scope["path"]
    if path == "/slow/v1/chat/completions":
        await _slow(receive, send)
        return
    if path == "/stream/v1/chat/completions":
        headers, body = _SSE, STREAM_BODY
    elif path == "/short/v1/chat/completions":
        headers, body = _SSE, SHORT_STREAM_BODY
    elif path in ("/v1/chat/completions", "/health"):
        headers, body = _JSON, COMPLETION_BODY
    else:
        await send({"type": "http.response.start", "status": 404, "headers": _JSON})
        await send({"type": "http.response.body", "body": b'{"error": {"message": "not found"}}'})
        return
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _slow(receive: Any, send: Any) -> None:
    # the next receive() is http.disconnect: the stream stops as soon as the client leaves, not 600 s later
    gone = asyncio.ensure_future(receive())
    await send({"type": "http.response.start", "status": 200, "headers": _SSE})
    try:
        for frame in _SLOW_FRAMES:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
            await asyncio.wait([gone], timeout=1.0)
            if gone.done():
                return
        await send({"type": "http.response.body", "body": b""})
    except OSError:  # the client left while a frame was being written
        return
    finally:
        gone.cancel()


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
                access_log=False, log_level="warning", lifespan="off", backlog=4096, timeout_graceful_shutdown=1)
