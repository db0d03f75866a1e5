"""Ask a configured model whether a request is acceptable; block on a flag.

The policy gets an `ask(text) -> flagged` callable (built in gateway/policy_setup.py on the router), so it knows
nothing about which adapter answers. When asking fails, `on_error` decides: allow lets the request through (and
counts it), deny refuses it with 503 moderation_unavailable.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from llm_gateway.policies.text_parts import call_texts
from llm_gateway.vocab.errors import ContentPolicyViolation, GatewayError, ServiceUnavailable
from llm_gateway.vocab.types import BasePolicy, Call, RequestContext

log = logging.getLogger("gateway.policy")

Ask = Callable[[str], Awaitable[bool]]

MODERATION_PROMPT = (
    "You are a content moderator. Read the user's text and answer with exactly one word: FLAGGED if it asks for "
    "or contains harmful, hateful, violent, sexual content involving minors, self-harm or illegal instructions; "
    "otherwise SAFE."
)


def is_flagged(answer: str) -> bool:
    return answer.strip().upper().startswith("FLAG")


@dataclass(slots=True)
class ModerationCounters:
    """Read by metrics."""

    flagged: int = 0
    errors: int = 0


class ModerationPolicy(BasePolicy):
    name = "moderation"

    def __init__(self, ask: Ask, *, on_error: str = "allow") -> None:
        if on_error not in ("allow", "deny"):
            raise ValueError(f"moderation on_error must be allow or deny, not {on_error!r}")
        self.ask = ask
        self.on_error = on_error
        self.counters = ModerationCounters()

    async def before(self, call: Call, ctx: RequestContext) -> Call | None:
        text = "\n".join(call_texts(call))
        if not text.strip():
            return None
        try:
            flagged = await self.ask(text)
        except GatewayError as exc:
            self.counters.errors += 1
            log.warning("request %s: moderation failed (%s %s), on_error=%s", ctx.request_id, exc.status, exc.code,
                        self.on_error)
            if self.on_error == "deny":
                raise ServiceUnavailable("The moderation check is unavailable and this gateway refuses unchecked "
                                         "requests; retry later.", code="moderation_unavailable") from exc
            return None
        if flagged:
            self.counters.flagged += 1
            raise ContentPolicyViolation("This request was flagged by the gateway's moderation check.")
        return None
