"""OpenAI Responses API <-> chat completions translation: request bodies and whole answers.

/v1/responses is served by the chat pipeline: a Responses body becomes a chat body (then a Call, through
gateway/schema.py), and the chat answer or its chunks become a `response` object or Responses events. Pure
functions; the stream translator is gateway/responses_events.py, the HTTP side gateway/responses_api.py.
"""

from __future__ import annotations

import uuid
from typing import Any

from llm_gateway.vocab.errors import InvalidRequest, UpstreamMalformed
from llm_gateway.wire.schema import invalid_type, type_name

# Responses features that need state the gateway does not keep, or tools it does not run: a 400 naming the
# parameter, never a silent drop. Each is accepted at its "off" value (null, false, an empty list).
UNSUPPORTED: dict[str, str] = {
    "previous_response_id": "the gateway keeps no responses; send the whole conversation in 'input'",
    "conversation": "the gateway keeps no conversations; send the whole conversation in 'input'",
    "prompt": "stored prompt templates are not supported by the gateway; send 'instructions' and 'input'",
    "background": "background responses are not supported by the gateway",
    "include": "extra output data ('include') is not supported by the gateway",
    "max_tool_calls": "the gateway runs no built-in tools, so 'max_tool_calls' has nothing to limit",
    "top_logprobs": "logprobs are not supported on /v1/responses by the gateway",
    "context_management": "context management is not supported by the gateway",
    "moderation": "moderated responses are not supported by the gateway",
    "image": "image options are not supported by the gateway",
    "access_programs": "access programs are not supported by the gateway",
    "background_options": "background responses are not supported by the gateway",
    "prompt_cache_options": "prompt cache options are not supported by the gateway; 'prompt_cache_key' is",
}
# Chat parameters sent to /v1/responses by mistake, and what Responses calls them.
_CHAT_ONLY: dict[str, str] = {
    "messages": "use 'input'",
    "max_tokens": "use 'max_output_tokens'",
    "max_completion_tokens": "use 'max_output_tokens'",
    "response_format": "use 'text.format'",
    "n": "a response has one answer",
}
# What the translation consumes; every other field (temperature, top_p, user, metadata, store, parallel_tool_calls,
# service_tier, ... and unknown ones) goes to the chat body under the same name, as chat requests keep theirs.
_TRANSLATED = frozenset({"input", "instructions", "max_output_tokens", "tools", "tool_choice", "text", "reasoning",
                         "stream_options", "truncation", *UNSUPPORTED, *_CHAT_ONLY})
_ROLES = ("user", "system", "developer", "assistant")
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


# request

def to_chat_body(body: Any) -> dict[str, Any]:
    """The chat completions body for a Responses body; raises InvalidRequest naming the Responses parameter."""
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object, got {type_name(body)}.")
    _refuse_unsupported(body)
    chat = {k: v for k, v in body.items() if k not in _TRANSLATED}
    messages = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise invalid_type("instructions", "a string", instructions)
        messages.append({"role": "system", "content": instructions})
    messages += input_messages(body.get("input"))
    if not messages:
        raise InvalidRequest("Invalid 'input': empty array. Expected an array with minimum length 1.",
                             param="input", code="empty_array")
    chat["messages"] = messages
    limit = body.get("max_output_tokens")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidRequest(f"Invalid value for 'max_output_tokens': expected an integer >= 1, got {limit!r}.",
                                 param="max_output_tokens", code="invalid_value")
        chat["max_completion_tokens"] = limit
    tools = _chat_tools(body.get("tools"))
    if tools:
        chat["tools"] = tools
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _chat_tool_choice(body["tool_choice"])
    chat.update(_text_options(body.get("text")))
    effort = _reasoning_effort(body.get("reasoning"))
    if effort is not None:
        chat["reasoning_effort"] = effort
    if body.get("stream") is True:  # usage comes with the last chunk, for response.completed
        chat["stream_options"] = {"include_usage": True}
    return chat


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for name, why in UNSUPPORTED.items():
        if body.get(name) not in (None, False, [], {}):  # 0 == False: top_logprobs 0 is off too
            raise InvalidRequest(f"Unsupported parameter: '{name}': {why}.", param=name, code="unsupported_parameter")
    for name, hint in _CHAT_ONLY.items():
        if name in body:
            raise InvalidRequest(f"Unsupported parameter: '{name}' is a chat completions parameter; {hint}.",
                                 param=name, code="unsupported_parameter")
    truncation = body.get("truncation")
    if truncation not in (None, "disabled"):
        raise InvalidRequest(f"Unsupported value for 'truncation': {truncation!r}; the gateway does not truncate "
                             "input, only 'disabled' is supported.", param="truncation", code="unsupported_value")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise invalid_type("stream_options", "an object", options)


def input_messages(value: Any) -> list[dict[str, Any]]:
    """Chat messages for `input`: a string is one user message; a function_call joins the assistant turn before it."""
    if value is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise invalid_type("input", "a string or an array of input items", value)
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise invalid_type(where, "an object", item)
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            tool_call = _tool_call(item, where)
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":  # the same turn: text, then the calls it made
                last.setdefault("tool_calls", []).append(tool_call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [tool_call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": _string(item, "call_id", where),
                             "content": _tool_output(item.get("output"), f"{where}.output")})
        elif kind == "item_reference":
            raise InvalidRequest(f"Unsupported input item: '{where}' is an item reference; the gateway keeps no "
                                 "items, send the item itself.", param=f"{where}.type", code="unsupported_value")
        else:
            raise InvalidRequest(f"Unsupported input item type {kind!r} at '{where}': the gateway serves messages, "
                                 "function_call and function_call_output items.", param=f"{where}.type",
                                 code="unsupported_value")
    return messages


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role is None:
        raise InvalidRequest(f"Missing required parameter: '{where}.role'.", param=f"{where}.role",
                             code="missing_required_parameter")
    if role not in _ROLES:
        raise InvalidRequest(f"Invalid value: {role!r}. Supported values are: {', '.join(repr(r) for r in _ROLES)}.",
                             param=f"{where}.role", code="invalid_value")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        if content is None:
            raise InvalidRequest(f"Missing required parameter: '{where}.content'.", param=f"{where}.content",
                                 code="missing_required_parameter")
        raise invalid_type(f"{where}.content", "a string or an array of content parts", content)
    parts = [_content_part(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
    if role == "assistant" and all(p["type"] == "text" for p in parts):
        # an earlier answer fed back: plain text, the form every backend takes for an assistant turn
        return {"role": role, "content": "".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _content_part(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise invalid_type(where, "an object", part)
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": _string(part, "text", where)}
    if kind == "refusal":
        return {"type": "refusal", "refusal": _string(part, "refusal", where)}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise InvalidRequest(f"Unsupported image at '{where}': the gateway takes images by 'image_url' "
                                 "(an https or data URL), not by 'file_id'.", param=f"{where}.image_url")
        image = {"url": url}
        if part.get("detail") is not None:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        if part.get("file_url") is not None:
            raise InvalidRequest(f"Unsupported file at '{where}': send 'file_data' or 'file_id', not 'file_url'.",
                                 param=f"{where}.file_url")
        return {"type": "file", "file": {k: part[k] for k in ("file_data", "file_id", "filename") if part.get(k)}}
    if kind == "input_audio":
        return {"type": "input_audio", "input_audio": part.get("input_audio")}
    raise InvalidRequest(f"Invalid content part type {kind!r} at '{where}'.", param=f"{where}.type",
                         code="invalid_value")


def _tool_call(item: dict[str, Any], where: str) -> dict[str, Any]:
    return {"id": _string(item, "call_id", where), "type": "function",
            "function": {"name": _string(item, "name", where), "arguments": _string(item, "arguments", where)}}


def _tool_output(output: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        raise invalid_type(where, "a string or an array of content parts", output)
    parts = [_content_part(part, f"{where}[{j}]") for j, part in enumerate(output)]
    for j, part in enumerate(parts):
        if part["type"] != "text":  # a chat tool message carries text only
            raise InvalidRequest(f"Unsupported content at '{where}[{j}]': a function call output can only carry text "
                                 "through the gateway.", param=f"{where}[{j}].type", code="unsupported_value")
    return parts


def _string(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        raise InvalidRequest(f"Missing required parameter: '{where}.{key}'.", param=f"{where}.{key}",
                             code="missing_required_parameter")
    if not isinstance(value, str):
        raise invalid_type(f"{where}.{key}", "a string", value)
    return value


def _chat_tools(tools: Any) -> list[dict[str, Any]]:
    """Responses function tools are flat ({type, name, parameters, ...}); chat nests them under `function`."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise invalid_type("tools", "an array", tools)
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise invalid_type(f"tools[{i}]", "an object", tool)
        kind = tool.get("type")
        if kind != "function":
            raise InvalidRequest(f"Unsupported tool type {kind!r} at 'tools[{i}]': the gateway runs no built-in "
                                 "tools; only 'function' tools are supported.", param=f"tools[{i}].type",
                                 code="unsupported_value")
        function = {"name": _string(tool, "name", f"tools[{i}]")}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        out.append({"type": "function", "function": function})
    return out


def _chat_tool_choice(choice: Any) -> Any:
    if choice in ("none", "auto", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": _string(choice, "name", "tool_choice")}}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        tools = choice.get("tools")
        if not isinstance(tools, list) or not all(isinstance(t, dict) and t.get("type") == "function" for t in tools):
            raise InvalidRequest("Invalid 'tool_choice.tools': expected an array of function tools.",
                                 param="tool_choice.tools")
        named = [{"type": "function", "function": {"name": _string(t, "name", "tool_choice.tools")}} for t in tools]
        return {"type": "allowed_tools", "allowed_tools": {"mode": choice.get("mode", "auto"), "tools": named}}
    raise InvalidRequest(f"Unsupported value for 'tool_choice': {choice!r}; the gateway takes 'none', 'auto', "
                         "'required', a function or allowed function tools.", param="tool_choice",
                         code="unsupported_value")


def _text_options(text: Any) -> dict[str, Any]:
    """`text.format` -> response_format (json_schema nests its schema one level deeper in chat), verbosity as is."""
    if text is None:
        return {}
    if not isinstance(text, dict):
        raise invalid_type("text", "an object", text)
    out: dict[str, Any] = {}
    if text.get("verbosity") is not None:
        out["verbosity"] = text["verbosity"]
    fmt = text.get("format")
    if fmt is None:
        return out
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_schema":
        schema = {"name": _string(fmt, "name", "text.format")}
        if not isinstance(fmt.get("schema"), dict):
            raise invalid_type("text.format.schema", "an object", fmt.get("schema"))
        for key in ("schema", "description", "strict"):
            if fmt.get(key) is not None:
                schema[key] = fmt[key]
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif kind == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif kind != "text":
        raise InvalidRequest(f"Invalid value for 'text.format.type': {kind!r}. Supported values are: 'text', "
                             "'json_schema', 'json_object'.", param="text.format.type", code="invalid_value")
    return out


def _reasoning_effort(reasoning: Any) -> Any:
    if reasoning is None:
        return None
    if not isinstance(reasoning, dict):
        raise invalid_type("reasoning", "an object", reasoning)
    for key in ("summary", "generate_summary"):
        if reasoning.get(key) is not None:
            raise InvalidRequest(f"Unsupported parameter: 'reasoning.{key}': chat models give no reasoning summary "
                                 "through the gateway.", param=f"reasoning.{key}", code="unsupported_parameter")
    return reasoning.get("effort")


def echo_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The request settings a `response` object repeats, with OpenAI's defaults where the request left them out."""
    text = body.get("text") if isinstance(body.get("text"), dict) else {}
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
    tools = [{"type": "function", "name": t.get("name"), "description": t.get("description"),
              "parameters": t.get("parameters"), "strict": t.get("strict")} for t in body.get("tools") or ()]
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": None,
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": None},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": body.get("service_tier") or "default",
        "store": body.get("store") is True,  # the gateway keeps nothing itself; true only when asked of the upstream
        "temperature": _number(body.get("temperature"), 1.0),
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity") or "medium"},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": tools,
        "top_logprobs": 0,
        "top_p": _number(body.get("top_p"), 1.0),
        "truncation": "disabled",
        "user": body.get("user"),
    }


def _number(value: Any, default: float) -> Any:
    return default if value is None else value


# whole answers

def to_response(answer: dict[str, Any], echo: dict[str, Any]) -> dict[str, Any]:
    """The `response` object for a whole chat completion."""
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamMalformed("The upstream answer has no choices to make a response of.")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    base = base_id(answer.get("id"))
    status, incomplete = answer_status(choice.get("finish_reason"))
    item_status = "completed" if status == "completed" else "incomplete"
    output: list[dict[str, Any]] = []
    content, refusal = message.get("content"), message.get("refusal")
    tool_calls = message.get("tool_calls") or []
    parts = []
    if isinstance(content, str) and (content or not tool_calls):
        parts.append(text_part(content))
    if isinstance(refusal, str) and refusal:
        parts.append({"type": "refusal", "refusal": refusal})
    if parts or not tool_calls:
        output.append(message_item(base, parts or [text_part("")], item_status))
    for i, tc in enumerate(tc for tc in tool_calls if isinstance(tc, dict)):
        fn = tc.get("function") if isinstance(tc.get("function"), dict) else {}
        output.append(function_item(base, i, tc.get("id"), fn.get("name") or "", fn.get("arguments") or "",
                                     item_status))
    return build_response(base, answer.get("created"), answer.get("model"), echo, status=status, output=output,
                          usage=to_usage(answer.get("usage")), incomplete=incomplete,
                          service_tier=answer.get("service_tier"))


def build_response(
    base: str, created: Any, model: Any, echo: dict[str, Any], *, status: str, output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None, incomplete: dict[str, str] | None = None,
    error: dict[str, Any] | None = None, service_tier: Any = None,
) -> dict[str, Any]:
    response = {
        "id": f"resp_{base}",
        "object": "response",
        "created_at": created if isinstance(created, (int, float)) else 0,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": incomplete,
        "model": model if isinstance(model, str) else "",
        "output": output,
        "usage": usage,
        **echo,
    }
    if isinstance(service_tier, str):  # what the upstream says it used, over what was asked
        response["service_tier"] = service_tier
    return response


def base_id(chat_id: Any) -> str:
    """The stem of the response's ids, taken from the chat completion's id so a replayed answer keeps its ids."""
    if isinstance(chat_id, str) and chat_id:
        return chat_id.removeprefix("chatcmpl-").removeprefix("chatcmpl_") or chat_id
    return uuid.uuid4().hex


def to_usage(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": prompt_details.get("cached_tokens") or 0,
                                 "cache_write_tokens": prompt_details.get("cache_write_tokens") or 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": completion_details.get("reasoning_tokens") or 0},
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }


def answer_status(finish_reason: Any) -> tuple[str, dict[str, str] | None]:
    reason = _INCOMPLETE.get(finish_reason)
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(base: str, content: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {"id": f"msg_{base}", "type": "message", "status": status, "role": "assistant", "content": content}


def function_item(base: str, index: int, call_id: Any, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": f"fc_{base}_{index}", "type": "function_call", "status": status, "arguments": arguments,
            "call_id": call_id if isinstance(call_id, str) and call_id else f"call_{base}_{index}", "name": name}
