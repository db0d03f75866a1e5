"""Request shape limits: how many messages, how large max_tokens may be (clamp or reject), parameters per alias."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from llm_gateway.vocab.errors import InvalidRequest
from llm_gateway.vocab.types import BasePolicy, Call, RequestContext

# always allowed, whatever an alias's allowed_params says: the gateway itself needs them
_CORE_PARAMS = frozenset({"model", "messages", "prompt", "input", "stream", "stream_options"})
_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")


class RequestLimitsPolicy(BasePolicy):
    name = "request_limits"

    def __init__(
        self,
        *,
        max_messages: int | None = None,
        max_tokens: int | None = None,
        max_tokens_action: str = "clamp",
        allowed_params: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        if max_tokens_action not in ("clamp", "reject"):
            raise ValueError(f"max_tokens_action must be clamp or reject, not {max_tokens_action!r}")
        self.max_messages = max_messages
        self.max_tokens = max_tokens
        self.clamp = max_tokens_action == "clamp"
        self.allowed = {alias: frozenset(p) | _CORE_PARAMS for alias, p in (allowed_params or {}).items() if p}

    async def before(self, call: Call, ctx: RequestContext) -> Call | None:
        body = call.body
        allowed = self.allowed.get(call.alias)
        if allowed is not None:
            for param in body:
                if param not in allowed:
                    listed = ", ".join(sorted(allowed - _CORE_PARAMS)) or "none"
                    raise InvalidRequest(f"Parameter `{param}` is not allowed for model `{call.alias}` "
                                         f"(allowed: {listed}).", param=param, code="unsupported_parameter")
        if self.max_messages is not None and call.kind == "chat":
            messages = body.get("messages") or ()
            if len(messages) > self.max_messages:
                raise InvalidRequest(f"Too many messages: {len(messages)}; this gateway allows at most "
                                     f"{self.max_messages} per request.", param="messages")
        if self.max_tokens is None:
            return None
        clamped: dict[str, int] = {}
        for field in _TOKEN_FIELDS:
            value = body.get(field)
            if isinstance(value, int) and value > self.max_tokens:
                if not self.clamp:
                    raise InvalidRequest(f"`{field}` is {value}; this gateway allows at most {self.max_tokens}.",
                                         param=field)
                clamped[field] = self.max_tokens
        if not clamped:
            return None
        ctx.response_headers["x-gateway-max-tokens-clamped"] = str(self.max_tokens)
        return replace(call, body={**body, **clamped})
