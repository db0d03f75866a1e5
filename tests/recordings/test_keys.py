"""Recording keys: what changes a key and what does not."""

from __future__ import annotations

import orjson

from llm_gateway.config.settings import DEFAULT_SCRUBBERS
from llm_gateway.recordings.keys import KeyMaker

CHAT = "/v1/chat/completions"
keys = KeyMaker(("user", "metadata"), [(s.pattern, s.replacement) for s in DEFAULT_SCRUBBERS])


def key(body: dict, endpoint: str = CHAT, alias: str = "m") -> str:
    return keys.normalize(endpoint, alias, body).key


def test_key_is_independent_of_body_key_order_stream_and_ignored_fields() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    same = {
        "temperature": 0,
        "user": "bob",
        "metadata": {"a": 1},
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"content": "hi", "role": "user"}],
        "model": "m",
    }
    assert key(base) == key(same)
    assert len(key(base)) == 32 and all(c in "0123456789abcdef" for c in key(base))


def test_key_changes_with_endpoint_alias_and_every_other_field() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    variants = {
        key(base),
        key(base, alias="other"),
        key(base, endpoint="/v1/completions"),
        key({**base, "temperature": 0.5}),
        key({**base, "messages": [{"role": "user", "content": "hj"}]}),
    }
    assert len(variants) == 5


def test_scrubbers_replace_volatile_text_in_messages_only() -> None:
    first = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "at 2024-01-02T03:04:05Z job 123e4567-e89b-12d3-a456-426614174000 in /tmp/pytest-7/x",
                    }
                ],
            }
        ],
    }
    second = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "at 2025-11-12T13:14:15.123+02:00 job 00000000-1111-2222-3333-444444444444 in /tmp/abc",
                    }
                ],
            }
        ],
    }
    assert key(first) == key(second)
    normalized = keys.normalize(CHAT, "m", first)
    # one text part is folded to plain text (canonical_chat), then scrubbed
    assert normalized.body["messages"][0]["content"] == "at <TIMESTAMP> job <UUID> in <TMPPATH>"
    # outside message text a UUID is a real difference
    assert key({**first, "seed_note": "123e4567-e89b-12d3-a456-426614174000"}) != key({**first, "seed_note": "x"})


def test_the_key_hashes_the_documented_canonical_form() -> None:
    import hashlib

    body = {"model": "m", "user": "u", "messages": [{"role": "user", "content": "hi"}]}
    normalized = keys.normalize(CHAT, "m", body)
    canonical = orjson.dumps(
        {"endpoint": CHAT, "alias": "m", "body": {"messages": [{"role": "user", "content": "hi"}]}},
        option=orjson.OPT_SORT_KEYS,
    )
    assert normalized.canonical == canonical
    assert normalized.key == hashlib.sha256(canonical).hexdigest()[:32]
    assert body["user"] == "u"  # the client's body is not touched


# one canonical conversation across protocols

TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"b": 2, "a": 1}'}}


def test_the_spellings_of_one_conversation_share_a_key() -> None:
    chat_sdk = {"model": "m", "max_tokens": 64, "stop": "END", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "refusal": None, "annotations": [], "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]}
    responses = {"model": "m", "max_completion_tokens": 64, "stop": ["END"], "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "ok"}]}]}
    messages = {"model": "m", "max_tokens": 64, "stop": ["END"], "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1,"b":2}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]}
    assert key(chat_sdk) == key(responses) == key(messages)
    assert key(messages) != key({**messages, "max_tokens": 65})
    other_args = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":2}'}}
    assert key(messages) != key({**messages, "messages": [messages["messages"][0],
                                                           {"role": "assistant", "tool_calls": [other_args]}]})


def legacy(body: dict, endpoint: str = CHAT, alias: str = "m") -> str:
    """The key as it was computed before canonical folding (the module docstring's algorithm, without folding)."""
    import hashlib

    kept = {k: v for k, v in body.items() if k not in ("model", "stream", "stream_options", "user", "metadata")}
    canonical = orjson.dumps({"endpoint": endpoint, "alias": alias, "body": kept}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:32]


def test_a_body_already_canonical_keeps_its_old_key_and_needs_no_legacy_one() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0}
    normalized = keys.normalize(CHAT, "m", body)
    assert normalized.key == legacy(body) and normalized.legacy_key is None


def test_a_body_that_folding_changes_carries_its_old_key() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "max_completion_tokens": 5}
    normalized = keys.normalize(CHAT, "m", body)
    assert normalized.legacy_key == legacy(body) != normalized.key
    assert normalized.body == {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    assert keys.normalize("/v1/embeddings", "m", {"model": "m", "input": ["a"]}).legacy_key is None
