"""A deny-list of regexes and keywords: requests containing one get 400 content_policy_violation; answers are cut."""

from __future__ import annotations

import re
from collections.abc import Iterable

from llm_gateway.policies.output_guard import OutputGuard
from llm_gateway.policies.text_filter import Scan, Span
from llm_gateway.policies.text_parts import call_texts
from llm_gateway.vocab.errors import ContentPolicyViolation
from llm_gateway.vocab.types import Call, RequestContext


class DenyList:
    """The patterns as one alternation and the keywords as another, each compiled once.

    Keywords are looked for with `in` on the lower-cased text first: Python's re has no fast path for a `\b`
    alternation, and most texts hold none of them.
    """

    def __init__(self, patterns: Iterable[str], keywords: Iterable[str]) -> None:
        patterns = tuple(patterns)
        self.words = tuple(k.lower() for k in keywords if k)
        self.patterns = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE) if patterns else None
        self.keywords = (re.compile(r"\b(?:" + "|".join(re.escape(w) for w in self.words) + r")\b", re.IGNORECASE)
                         if self.words else None)

    def search(self, text: str) -> re.Match[str] | None:
        """The earliest match in `text`, or None."""
        found = self.patterns.search(text) if self.patterns is not None else None
        if self.keywords is not None:
            lowered = text.lower()
            if any(word in lowered for word in self.words):
                keyword = self.keywords.search(text)
                if keyword is not None and (found is None or keyword.start() < found.start()):
                    found = keyword
        return found


def compile_deny_list(patterns: Iterable[str], keywords: Iterable[str]) -> DenyList | None:
    patterns, keywords = tuple(patterns), tuple(keywords)
    return DenyList(patterns, keywords) if patterns or keywords else None


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
