"""One RequestContext per request, with one request id, whichever route (raw ASGI or Starlette) answers it.

The context is kept in the ASGI scope, so Starlette's exception handlers answer with the id the handler already
gave the request (and the log line) rather than minting a second one.
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Any

from llm_gateway.server.asgi_io import scope_headers
from llm_gateway.vocab.types import RequestContext

_SCOPE_KEY = "llm_gateway.context"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# Generated request ids: a random per-process prefix and a counter. os.urandom per request cost ~90 us on a VM.
# The 32 digits are a version-4 UUID's (version and variant nibbles set), so upstreams that accept only UUIDs as
# x-request-id get the same digits (adapters/http.py upstream_request_id).
_random = os.urandom(10).hex()
_ID_PREFIX = _random[:12] + "4" + _random[13:16] + "8" + _random[17:]
_ID_COUNTER = itertools.count()


def request_context(scope: dict[str, Any]) -> RequestContext:
    """The request's context: made on first use from its headers, the same object every time after."""
    ctx = scope.get(_SCOPE_KEY)
    if ctx is None:
        headers = scope_headers(scope)
        ctx = scope[_SCOPE_KEY] = RequestContext(
            request_id=given_or_new_id(headers.get("x-request-id")), headers=headers
        )
    return ctx


def given_or_new_id(given: str | None) -> str:
    """The client's x-request-id when it is a sane token, else a new one."""
    if given and _REQUEST_ID.fullmatch(given):
        return given
    return f"req_{_ID_PREFIX}{next(_ID_COUNTER):012x}"
