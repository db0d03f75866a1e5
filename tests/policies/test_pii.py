"""PII: typed placeholders on a copy before the upstream sees the request, checksums against false alarms."""

from __future__ import annotations

import pytest

from llm_gateway.policies.pii import PiiPolicy
from llm_gateway.policies.pii_patterns import PiiDetector, iban_ok, luhn_ok
from llm_gateway.vocab.errors import ContentPolicyViolation
from llm_gateway.vocab.types import Call, RequestContext

ALL = ("email", "phone", "credit_card", "iban", "ip", "secret")


def chat(*contents: object) -> Call:
    messages = [{"role": "user", "content": c} for c in contents]
    return Call(kind="chat", alias="m", body={"model": "m", "messages": messages})


def kinds(text: str) -> list[str]:
    return [k for k, _, _ in PiiDetector(ALL).find(text)]


def test_each_kind_is_found_and_lookalikes_are_not() -> None:
    assert kinds("mail ada@example.co.uk now") == ["email"]
    assert kinds("card 4111 1111 1111 1111") == ["credit_card"]
    assert kinds("card 4111 1111 1111 1112") == []  # fails Luhn
    assert kinds("iban DE89 3704 0044 0532 0130 00") == ["iban"]
    assert kinds("iban DE00 3704 0044 0532 0130 00") == []  # fails mod 97
    assert kinds("from 192.168.1.20 to 999.1.1.1") == ["ip"]
    assert kinds("call +44 20 7946 0958 or (555) 123-4567") == ["phone", "phone"]
    assert kinds("key sk-proj-abcdefghijklmnopqrstuvwx and AKIAABCDEFGHIJKLMNOP") == ["secret", "secret"]
    assert kinds("order 12345678 costs 1999.99, version 1.2.3") == []
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert iban_ok("GB82WEST12345698765432")


async def test_redaction_uses_typed_numbered_placeholders_consistently_and_leaves_the_client_body() -> None:
    policy, ctx = PiiPolicy("redact", ALL), RequestContext(request_id="r")
    parts = [{"type": "text", "text": "and bob@example.com"}, {"type": "image_url", "image_url": {"url": "u"}}]
    call = chat("mail ada@example.com, not bob@example.com; ada@example.com again", parts, "nothing here")
    out = await policy.before(call, ctx)
    assert out is not None
    messages = out.body["messages"]
    assert messages[0]["content"] == "mail <EMAIL_1>, not <EMAIL_2>; <EMAIL_1> again"
    assert messages[1]["content"][0]["text"] == "and <EMAIL_2>"
    assert messages[1]["content"][1] is parts[1]  # untouched parts are shared, not copied
    assert messages[2] is call.body["messages"][2]
    assert call.body["messages"][0]["content"].startswith("mail ada@")  # the client's body is unchanged
    assert policy.counters.redacted == {"email": 4}


async def test_a_clean_request_is_not_copied() -> None:
    assert await PiiPolicy("redact", ALL).before(chat("hello there"), RequestContext(request_id="r")) is None


async def test_block_names_the_kinds_but_never_the_values() -> None:
    with pytest.raises(ContentPolicyViolation) as info:
        await PiiPolicy("block", ALL).before(chat("card 4111111111111111 mail a@b.io"), RequestContext(request_id="r"))
    assert "credit_card" in info.value.message and "email" in info.value.message
    assert "4111" not in info.value.message and "a@b.io" not in info.value.message


async def test_only_the_configured_kinds_are_redacted() -> None:
    out = await PiiPolicy("redact", ["email"]).before(chat("a@b.io at 10.0.0.1"), RequestContext(request_id="r"))
    assert out is not None and out.body["messages"][0]["content"] == "<EMAIL_1> at 10.0.0.1"


async def test_output_redaction_reuses_the_request_placeholders_across_stream_chunks() -> None:
    policy, ctx = PiiPolicy("redact", ALL, output=True, window=8), RequestContext(request_id="r")
    call = await policy.before(chat("write to ada@example.com"), ctx)
    assert call is not None
    call.stream = True
    sent = []
    for text in ("Sure, I wrote to ada@exa", "mple.com and cc@example.org", "."):
        c = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
        out = await policy.on_chunk(call, c, ctx)
        sent += [c] if out is None else out
    sent += await policy.end_stream(call, ctx)
    text = "".join(c["choices"][0]["delta"]["content"] for c in sent)
    assert text == "Sure, I wrote to <EMAIL_1> and <EMAIL_2>."
