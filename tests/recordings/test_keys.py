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
