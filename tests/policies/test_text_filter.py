"""The hold-back window: nothing of a match leaves before the match is decided, safe text leaves promptly."""

from __future__ import annotations

import re

from llm_gateway.policies.text_filter import HoldBack, Span, filter_whole

BLOCKED = re.compile(r"zeus-\d+")


def block_scan(text: str) -> list[Span]:
    return [Span(m.start(), m.end()) for m in BLOCKED.finditer(text)][:1]


def redact_scan(text: str) -> list[Span]:
    return [Span(m.start(), m.end(), "<CODE>") for m in BLOCKED.finditer(text)]


def test_a_blocked_pattern_split_across_chunks_never_leaks() -> None:
    hold = HoldBack(block_scan, window=8)
    released = [hold.feed(0, part) for part in ("The launch code is ze", "us-", "42 and more")]
    text = "".join(r.text for r in released)
    assert "ze" not in text.replace("The launch code is ", "")
    assert text == "The launch code is "
    assert [r.blocked for r in released] == [False, False, True]


def test_safe_text_is_released_once_it_is_a_window_away_from_the_end() -> None:
    hold = HoldBack(block_scan, window=4)
    assert hold.feed(0, "abcdefgh").text == "abcd"
    assert hold.feed(0, "ij").text == "ef"
    assert hold.feed(0, "", final=True).text == "ghij"
    assert hold.pending() == []


def test_redaction_across_chunks_replaces_the_whole_match_and_keeps_choices_apart() -> None:
    hold = HoldBack(redact_scan, window=6)
    out0 = hold.feed(0, "code zeus-") .text + hold.feed(1, "other") .text
    out0 += hold.feed(0, "77 done", final=True).text
    assert out0 == "code <CODE> done"
    assert hold.feed(1, " text", final=True).text == "other text"


def test_a_match_that_straddles_the_window_is_held_whole() -> None:
    hold = HoldBack(redact_scan, window=2)
    first = hold.feed(0, "x zeus-1234 tail")  # the match ends 5 characters before the end: it is complete
    assert first.text == "x <CODE> ta"
    assert hold.feed(0, "", final=True).text == "il"


def test_whole_answers_are_cut_at_the_first_blocked_match() -> None:
    assert filter_whole("ok zeus-1 rest", block_scan).text == "ok "
    assert filter_whole("ok zeus-1 rest", block_scan).blocked
    assert filter_whole("a zeus-1 b zeus-2", redact_scan).text == "a <CODE> b <CODE>"
    assert filter_whole("clean", block_scan).text == "clean"
