"""PII and secrets in requests: redacted to typed placeholders (<EMAIL_1>) before any upstream or recording sees
them, or the request blocked; optionally the same for answers (streams through the hold-back window).

The same value gets the same placeholder throughout one request (input and output), so the model can still refer
to "<EMAIL_1>" consistently; the values themselves are never logged or kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from llm_gateway.policies.output_guard import OutputGuard
from llm_gateway.policies.pii_patterns import PiiDetector
from llm_gateway.policies.text_filter import Scan, Span
from llm_gateway.policies.text_parts import call_texts, rewrite_call
from llm_gateway.vocab.errors import ContentPolicyViolation
from llm_gateway.vocab.types import Call, RequestContext


@dataclass(slots=True)
class Placeholders:
    """One request's value -> placeholder map."""

    by_value: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def name(self, kind: str, value: str) -> str:
        placeholder = self.by_value.get(value)
        if placeholder is None:
            n = self.counts[kind] = self.counts.get(kind, 0) + 1
            placeholder = self.by_value[value] = f"<{kind.upper()}_{n}>"
        return placeholder


@dataclass(slots=True)
class PiiCounters:
    """Read by metrics: values redacted, by type, and requests blocked."""

    redacted: dict[str, int] = field(default_factory=dict)
    requests_blocked: int = 0


class PiiPolicy(OutputGuard):
    name = "pii"

    def __init__(self, action: str = "redact", types: Iterable[str] = (), *, output: bool = False,
                 window: int = 64) -> None:
        super().__init__()
        if action not in ("redact", "block"):
            raise ValueError(f"pii action must be redact or block, not {action!r}")
        self.action = action
        self.detector = PiiDetector(types)
        self.output = output
        self.window = window
        self.counters = PiiCounters()

    async def before(self, call: Call, ctx: RequestContext) -> Call | None:
        if self.action == "block":
            kinds = sorted({kind for text in call_texts(call) for kind, _, _ in self.detector.find(text)})
            if kinds:
                self.counters.requests_blocked += 1
                raise ContentPolicyViolation(
                    f"This request contains personal data or secrets ({', '.join(kinds)}) and the gateway blocks it; "
                    "remove them and retry.")
            return None
        # cheap pass first: most requests hold nothing to redact and must not pay for a rewrite
        if not any(next(self.detector.find(text), None) for text in call_texts(call)):
            return None
        return rewrite_call(call, lambda text: self._redact(text, ctx))

    def _redact(self, text: str, ctx: RequestContext) -> str:
        names = self._placeholders(ctx)
        out: list[str] = []
        pos = 0
        for kind, start, end in self.detector.find(text):
            out.append(text[pos:start])
            out.append(names.name(kind, text[start:end]))
            self.counters.redacted[kind] = self.counters.redacted.get(kind, 0) + 1
            pos = end
        if pos == 0:
            return text
        out.append(text[pos:])
        return "".join(out)

    def _placeholders(self, ctx: RequestContext) -> Placeholders:
        names = ctx.state.get("pii.placeholders")
        if names is None:
            names = ctx.state["pii.placeholders"] = Placeholders()
        return names

    def output_scan(self, ctx: RequestContext) -> Scan | None:
        if not self.output:
            return None
        detector, block = self.detector, self.action == "block"
        names = self._placeholders(ctx)

        def scan(text: str) -> list[Span]:
            return [Span(start, end, None if block else names.name(kind, text[start:end]))
                    for kind, start, end in detector.find(text)]

        return scan
