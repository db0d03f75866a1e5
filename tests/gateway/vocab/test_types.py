"""The shared vocabulary's few behaviours."""

from __future__ import annotations

from dataclasses import fields

from llm_gateway.vocab.types import Call


def test_routed_keeps_every_field_but_the_target() -> None:
    call = Call(kind="chat", alias="a", body={"model": "a"}, stream=True, model="", provider="", request_id="req_1")
    routed = call.routed("b", "gpt-x", "up")
    assert (routed.alias, routed.model, routed.provider) == ("b", "gpt-x", "up")
    others = [f.name for f in fields(Call) if f.name not in ("alias", "model", "provider")]
    assert others, "Call has fields besides the target"
    for name in others:  # a field added to Call later must be carried here too
        assert getattr(routed, name) is getattr(call, name), name
    assert call.alias == "a" and call.model == ""  # the original is left as it was


def test_upstream_body_substitutes_the_model_without_touching_the_clients_body() -> None:
    call = Call(kind="chat", alias="a", body={"model": "a", "x": 1}).routed("a", "gpt-x", "up")
    assert call.upstream_body() == {"model": "gpt-x", "x": 1}
    assert call.body["model"] == "a"
