"""A prompt-injection heuristic: phrases that try to override instructions or pull out the system prompt.

A heuristic, not a classifier: it flags (response header `x-gateway-flags: prompt_injection` and a counter) or
blocks. Patterns are compiled once into one alternation; only text parts are scanned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from llm_gateway.policies.text_parts import call_texts
from llm_gateway.vocab.errors import ContentPolicyViolation
from llm_gateway.vocab.types import BasePolicy, Call, RequestContext

# (gate, pattern): a pattern runs only when one of its gate words is in the lower-cased text. Python's re has no
# fast path for an alternation starting with \b (~0.3 ms per KB for these), while `in` on a string costs microseconds.
INJECTION_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("ignore", "disregard", "forget", "override"),
     (r"\b(?:ignore|disregard|forget|override)\b[^.\n]{0,40}\b(?:previous|prior|above|earlier|all|your|system)\b"
     r"[^.\n]{0,20}\b(?:instructions?|prompts?|rules|guidelines|directions)\b")),
    (("prompt", "instruction", "message"),
     (r"\b(?:reveal|show|print|repeat|output|leak)\b[^.\n]{0,30}\b(?:system|hidden|initial|original)\s+"
     r"(?:prompt|instructions?|message)\b")),
    (("you are now",),
     r"\byou are now\b[^.\n]{0,40}\b(?:unrestricted|jailbroken|DAN|free|without (?:any )?(?:rules|limits))\b"),
    (("mode",), r"\b(?:developer|god|jailbreak|DAN)\s+mode\b"),
    (("do anything now",), r"\bdo anything now\b"),
    (("<system", "</system", "im_start", "im_end"), r"</?(?:system|im_start|im_end)>|<\|im_start\|>"),
)

FLAG = "prompt_injection"


@dataclass(slots=True)
class InjectionCounters:
    """Read by metrics."""

    flagged: int = 0
    blocked: int = 0


class InjectionPolicy(BasePolicy):
    name = "injection"

    def __init__(self, action: str = "flag", extra_patterns: Iterable[str] = ()) -> None:
        if action not in ("flag", "block"):
            raise ValueError(f"injection action must be flag or block, not {action!r}")
        self.action = action
        self.rules = [(gate, re.compile(p, re.IGNORECASE)) for gate, p in INJECTION_RULES]
        extra = tuple(extra_patterns)
        self.extra = re.compile("|".join(f"(?:{p})" for p in extra), re.IGNORECASE) if extra else None
        self.counters = InjectionCounters()

    def matches(self, text: str) -> bool:
        if self.extra is not None and self.extra.search(text):
            return True
        lowered = text.lower()
        return any(any(word in lowered for word in gate) and regex.search(text) for gate, regex in self.rules)

    async def before(self, call: Call, ctx: RequestContext) -> Call | None:
        if not any(self.matches(text) for text in call_texts(call)):
            return None
        if self.action == "block":
            self.counters.blocked += 1
            raise ContentPolicyViolation(
                "This request looks like a prompt injection (an attempt to override instructions) and the gateway "
                "blocks it.", code="prompt_injection")
        self.counters.flagged += 1
        ctx.flags.append(FLAG)
        existing = ctx.response_headers.get("x-gateway-flags")
        ctx.response_headers["x-gateway-flags"] = f"{existing},{FLAG}" if existing else FLAG
        return None
