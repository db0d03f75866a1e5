"""What an output guard finds in text, and the hold-back window that keeps a match split across chunks from leaking.

A guard's scan returns spans: a span with a replacement is rewritten (PII redaction), a span without one blocks the
answer from its start on (deny-list). Whole answers are scanned at once; streams go through `HoldBack`, which
releases text only when it is at least `window` characters from the end of what has arrived, or when the stream
ends, so a pattern can complete before any of it is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    replacement: str | None = None  # None: block from `start` on

    @property
    def blocks(self) -> bool:
        return self.replacement is None


Scan = Callable[[str], list[Span]]


@dataclass(slots=True)
class Released:
    text: str
    blocked: bool = False


def apply(text: str, spans: list[Span], upto: int) -> str:
    """text[:upto] with the replacements of the spans that end by `upto` (spans sorted and not overlapping)."""
    out: list[str] = []
    pos = 0
    for span in spans:
        if span.end > upto or span.start < pos:
            continue
        out.append(text[pos:span.start])
        out.append(span.replacement or "")
        pos = span.end
    out.append(text[pos:upto])
    return "".join(out)


def filter_whole(text: str, scan: Scan) -> Released:
    spans = scan(text)
    block = next((s for s in spans if s.blocks), None)
    if block is not None:
        return Released(apply(text, spans, block.start), blocked=True)
    return Released(apply(text, spans, len(text)) if spans else text)


class HoldBack:
    """One stream's held text, per choice index."""

    __slots__ = ("buffers", "scan", "window")

    def __init__(self, scan: Scan, window: int) -> None:
        self.scan = scan
        self.window = window
        self.buffers: dict[int, str] = {}

    def feed(self, index: int, text: str, *, final: bool = False) -> Released:
        buffer = self.buffers.get(index, "") + text
        spans = self.scan(buffer)
        block = next((s for s in spans if s.blocks), None)
        if block is not None:
            self.buffers[index] = ""
            return Released(apply(buffer, spans, block.start), blocked=True)
        cut = len(buffer) if final else max(0, len(buffer) - self.window)
        for span in spans:  # never release part of a match: cut before it
            if span.start < cut < span.end:
                cut = span.start
        self.buffers[index] = buffer[cut:]
        return Released(apply(buffer, spans, cut))

    def pending(self) -> list[int]:
        return [i for i, text in self.buffers.items() if text]
