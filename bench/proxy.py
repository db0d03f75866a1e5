"""The Python limit: the least a Starlette proxy can do, forwarding with one shared aiohttp session.

Run: python -m bench.proxy PORT UPSTREAM_URL  (uvicorn, one worker, uvloop + httptools).
"""

from __future__ import annotations

import sys
from contextlib import asynccontextmanager

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM = sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:18000"
session: aiohttp.ClientSession


@asynccontextmanager
async def lifespan(app: Starlette):
    global session
    session = aiohttp.ClientSession(UPSTREAM, connector=aiohttp.TCPConnector(limit=2000))
    yield
    await session.close()


async def forward(request: Request) -> Response:
    upstream = await session.post(request.url.path, data=await request.body(),
                                  headers={"content-type": "application/json", "authorization": "Bearer sk-bench"})
    kind = upstream.headers.get("content-type", "application/json")
    if kind.startswith("text/event-stream"):
        return StreamingResponse(upstream.content.iter_any(), media_type=kind)
    return Response(await upstream.read(), status_code=upstream.status, media_type=kind)


app = Starlette(routes=[Route("/{path:path}", forward, methods=["POST"])], lifespan=lifespan)

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
                access_log=False, log_level="warning", backlog=4096)
