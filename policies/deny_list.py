"""A deny-list of regexes and keywords: requests containing one get 400 content_policy_violation; answers are cut."""

from __future__ import annotations

import re
from collections.abc import Iterable

from gateway.errors import ContentPolicyViolation
from gateway.types import Call, RequestContext
from policies.output_guard import OutputGuard
from policies.text_filter import Scan, Span
from policies.text_parts import call_texts


def compile_deny_list(patterns: Iterable[str], keywords: Iterable[str]) -> re.Pattern[str] | None:
    """One alternation for all entries, compiled once: a request is scanned in a single pass per text."""
    parts = [f"(?:{p})" for p in patterns]
    words = [re.escape(k) for k in keywords if k]
    if words:
        parts.append(r"\b(?:" + "|".join(words) + r")\b")
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


class DenyListPolicy(OutputGuard):
    name = "deny_list"

    def __init__(self, patterns: Iterable[str] = (), keywords: Iterable[str] = (), *, output: bool = True,
                 window: int = 64) -> None:
        super().__init__()
        self.regex = compile_deny_list(patterns, keywords)
        self.output = output
        self.window = window

    async def before(self, call: Call, ctx: RequestContext) -> Call | None:
        if self.regex is None:
            return None
        for text in call_texts(call):
            if self.regex.search(text):
                # the message never names what matched: the denial must not echo the content back or into logs
                raise ContentPolicyViolation(
                    "This request was blocked by the gateway's content policy (deny-list).", param="messages"
                    if call.kind == "chat" else None)
        return None

    def output_scan(self, ctx: RequestContext) -> Scan | None:
        regex = self.regex
        if regex is None or not self.output:
            return None

        def scan(text: str) -> list[Span]:
            match = regex.search(text)
            return [] if match is None else [Span(match.start(), match.end())]

        return scan
