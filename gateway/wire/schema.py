"""Validate and normalize an OpenAI request body into a Call.

Only what the gateway relies on is checked; every other field is kept as is for the upstream.
Errors name the offending field the way OpenAI does (`messages[2].role`).
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any

from llm_gateway.vocab.errors import InvalidRequest, ModelNotFound
from llm_gateway.vocab.types import Call, Kind

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"  # what a /v1/moderations body without `model` is routed to
_NUM = (int, float)

# field -> (check, expectation); None values are accepted for every optional field, as OpenAI does
_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "temperature": (
        lambda v: isinstance(v, _NUM) and not isinstance(v, bool) and 0 <= v <= 2,
        "a number between 0 and 2",
    ),
    "top_p": (lambda v: isinstance(v, _NUM) and not isinstance(v, bool) and 0 <= v <= 1, "a number between 0 and 1"),
    "n": (lambda v: _is_int(v) and 1 <= v <= 128, "an integer between 1 and 128"),
    # legacy completions: 0 is valid (with echo it scores the prompt); chat's limits are left to the upstream
    "max_tokens": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "presence_penalty": (
        lambda v: isinstance(v, _NUM) and not isinstance(v, bool) and -2 <= v <= 2,
        "a number between -2 and 2",
    ),
    "frequency_penalty": (
        lambda v: isinstance(v, _NUM) and not isinstance(v, bool) and -2 <= v <= 2,
        "a number between -2 and 2",
    ),
    "top_logprobs": (lambda v: _is_int(v) and 0 <= v <= 20, "an integer between 0 and 20"),
    "seed": (lambda v: _is_int(v), "an integer"),
    "logprobs": (lambda v: isinstance(v, bool) or (_is_int(v) and 0 <= v <= 5), "a boolean"),
    "best_of": (lambda v: _is_int(v) and 0 <= v <= 20, "an integer between 0 and 20"),
    "dimensions": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
}
_CHAT_FIELDS = (
    "temperature",
    "top_p",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "top_logprobs",
    "seed",
    "logprobs",
)
_COMPLETION_FIELDS = (
    "temperature",
    "top_p",
    "n",
    "max_tokens",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "logprobs",
    "best_of",
)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def invalid_type(param: str, expected: str, value: Any) -> InvalidRequest:
    return InvalidRequest(f"Invalid type for '{param}': expected {expected}, but got {type_name(value)}.", param=param)


def parse_call(kind: Kind, body: Any, aliases: Container[str]) -> Call:
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object, got {type_name(body)}.")
    alias = body.get("model")
    if alias is None and kind == "moderation":
        alias = body["model"] = DEFAULT_MODERATION_MODEL  # optional in OpenAI's API: its default model
    if alias is None:
        raise InvalidRequest("you must provide a model parameter", param="model", code="missing_required_parameter")
    if not isinstance(alias, str):
        raise invalid_type("model", "a string", alias)
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise invalid_type("stream", "a boolean", stream)
    if kind == "chat":
        _check_chat(body)
    elif kind == "completion":
        _check_completion(body)
    elif kind == "moderation":
        _check_moderation(body)
        stream = False
    else:
        _check_embedding(body)
        stream = False
    if stream:
        _check_stream_options(body)
    if alias not in aliases:
        raise ModelNotFound(f"The model `{alias}` does not exist or you do not have access to it.", param="model")
    return Call(kind=kind, alias=alias, body=body, stream=stream)


def _check_fields(body: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        check, expected = _RANGES[name]
        if not check(value):
            raise InvalidRequest(
                f"Invalid value for '{name}': expected {expected}, got {value!r}.",
                param=name,
                code="invalid_value" if not isinstance(value, (str, list, dict)) else None,
            )


def _check_chat(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest(
            "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
        )
    if not isinstance(messages, list):
        raise invalid_type("messages", "an array", messages)
    if not messages:
        raise InvalidRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            param="messages",
            code="empty_array",
        )
    for i, message in enumerate(messages):
        _check_message(i, message)
    _check_fields(body, _CHAT_FIELDS)
    _check_stop(body)
    _check_tools(body)


def _check_message(i: int, message: Any) -> None:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise invalid_type(where, "an object", message)
    role = message.get("role")
    if role is None:
        raise InvalidRequest(
            f"Missing required parameter: '{where}.role'.", param=f"{where}.role", code="missing_required_parameter"
        )
    if role not in ROLES:
        raise InvalidRequest(
            f"Invalid value: '{role}'. Supported values are: {', '.join(repr(r) for r in ROLES)}.",
            param=f"{where}.role",
            code="invalid_value",
        )
    content = message.get("content")
    if content is None:
        if role not in ("assistant", "function"):  # an assistant turn may carry only tool_calls
            raise InvalidRequest(
                f"Missing required parameter: '{where}.content'.",
                param=f"{where}.content",
                code="missing_required_parameter",
            )
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise InvalidRequest(
                    f"Invalid content part: '{where}.content[{j}]' must be an object with a 'type'.",
                    param=f"{where}.content[{j}]",
                )
    elif not isinstance(content, str):
        raise invalid_type(f"{where}.content", "a string or an array of content parts", content)
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise InvalidRequest(
            f"Missing required parameter: '{where}.tool_call_id'.",
            param=f"{where}.tool_call_id",
            code="missing_required_parameter",
        )
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        if not isinstance(tool_calls, list):
            raise invalid_type(f"{where}.tool_calls", "an array", tool_calls)
        for j, tc in enumerate(tool_calls):
            if not isinstance(tc, dict) or not isinstance(tc.get("function"), dict):
                raise InvalidRequest(
                    f"Invalid '{where}.tool_calls[{j}]': expected an object with a 'function'.",
                    param=f"{where}.tool_calls[{j}]",
                )


def _check_stop(body: dict[str, Any]) -> None:
    stop = body.get("stop")
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise invalid_type("stop", "a string or an array of strings", stop)
    if len(stop) > 4:
        raise InvalidRequest("Invalid 'stop': at most 4 stop sequences are allowed.", param="stop")


def _check_tools(body: dict[str, Any]) -> None:
    choice = body.get("tool_choice")
    if choice is not None and not (choice in ("none", "auto", "required") or isinstance(choice, dict)):
        raise InvalidRequest(f"Invalid value for 'tool_choice': {choice!r}.", param="tool_choice", code="invalid_value")
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise invalid_type("tools", "an array", tools)
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise invalid_type(f"tools[{i}]", "an object", tool)
        if tool.get("type", "function") == "function":
            fn = tool.get("function")
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn.get("name"):
                raise InvalidRequest(
                    f"Missing required parameter: 'tools[{i}].function.name'.",
                    param=f"tools[{i}].function.name",
                    code="missing_required_parameter",
                )


def _check_stream_options(body: dict[str, Any]) -> None:
    options = body.get("stream_options")
    if options is None:
        return
    if not isinstance(options, dict):
        raise invalid_type("stream_options", "an object", options)
    include = options.get("include_usage")
    if include is not None and not isinstance(include, bool):
        raise invalid_type("stream_options.include_usage", "a boolean", include)


def _check_completion(body: dict[str, Any]) -> None:
    prompt = body.get("prompt")
    if prompt is None:
        raise InvalidRequest("Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter")
    if not _is_prompt(prompt):
        raise invalid_type("prompt", "a string, an array of strings, or an array of token arrays", prompt)
    _check_fields(body, _COMPLETION_FIELDS)
    _check_stop(body)


def _is_prompt(value: Any) -> bool:
    if isinstance(value, str):
        return True
    if not isinstance(value, list) or not value:
        return False
    if all(_is_int(v) for v in value):
        return True
    return all(isinstance(v, str) or (isinstance(v, list) and v and all(_is_int(t) for t in v)) for v in value)


def _check_embedding(body: dict[str, Any]) -> None:
    value = body.get("input")
    if value is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    if isinstance(value, str):
        if not value:
            raise InvalidRequest("Invalid 'input': empty string.", param="input")
    elif not _is_prompt(value):
        raise invalid_type("input", "a string, an array of strings, or an array of token arrays", value)
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise InvalidRequest(
            f"Invalid value for 'encoding_format': {fmt!r}. Supported values are: 'float', 'base64'.",
            param="encoding_format",
            code="invalid_value",
        )
    _check_fields(body, ("dimensions",))


def _check_moderation(body: dict[str, Any]) -> None:
    """`input`: a string, an array of strings, or an array of multi-modal parts (text, image_url), as OpenAI takes."""
    value = body.get("input")
    if value is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    if isinstance(value, str):
        return
    if not isinstance(value, list) or not value:
        raise invalid_type("input", "a string, an array of strings, or an array of multi-modal inputs", value)
    if all(isinstance(v, str) for v in value):
        return
    for i, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        if kind == "image_url" and isinstance((part.get("image_url") or {}).get("url"), str):
            continue
        raise InvalidRequest(
            f"Invalid 'input[{i}]': expected a string, or an object of type 'text' (with 'text') or 'image_url' "
            "(with 'image_url.url').",
            param=f"input[{i}]",
        )
