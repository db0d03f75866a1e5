"""A Messages API request -> the canonical OpenAI chat body, checked the way Anthropic checks it.

Every problem is a 400 naming the field in Anthropic's own dotted form (`messages.1.content.0.type`). The chat body
is what policies, recording keys and every non-Anthropic backend see; the client's body itself travels beside it
(vocab NativeRequest) for a backend that speaks Messages. What the chat shape cannot carry is listed as
`untranslatable`, so only a backend that does not speak Messages refuses it; what Anthropic documents as advice
(`cache_control`, earlier turns' `thinking` blocks, `service_tier`) is dropped from the chat body.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from llm_gateway.vocab.errors import InvalidRequest

# what /v1/messages takes besides the conversation: each is translated, checked, or dropped as advice; any other
# field (container, inference_geo, mcp_servers, ...) reaches an Anthropic backend only
_KNOWN = frozenset({
    "model", "max_tokens", "messages", "system", "tools", "tool_choice", "stop_sequences", "temperature", "top_p",
    "top_k", "metadata", "thinking", "service_tier", "stream", "output_config",
})
_PLAIN = frozenset({"model", "max_tokens", "messages", "system"})
# documented as hints about caching, scheduling and diagnostics, never about the answer: dropped in translation
ADVICE = frozenset({"cache_control", "service_tier", "speed", "diagnostics"})
_USER_BLOCKS = frozenset({"text", "image", "document", "tool_result", "search_result"})
_ASSISTANT_BLOCKS = frozenset({
    "text", "tool_use", "thinking", "redacted_thinking", "server_tool_use", "web_search_tool_result",
    "web_fetch_tool_result", "code_execution_tool_result", "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result", "mcp_tool_use", "mcp_tool_result", "container_upload",
})
_SERVER_RESULT = "is a server-tool block: only an Anthropic backend runs server tools"
_VERSION = re.compile(r"20\d\d-[01]\d-[0-3]\d")
FIRST_VERSION = "2023-01-01"  # Anthropic's versions are dates: 2023-01-01, 2023-06-01, and later ones SDKs send
_SEEN_VERSIONS = {"2023-06-01", "2023-01-01"}  # checked once each: the header repeats on every request


class Translation:
    """The chat body for the pipeline, and what the chat shape could not carry: (param, reason)."""

    __slots__ = ("chat", "untranslatable")

    def __init__(self, chat: dict[str, Any]) -> None:  # by hand: a dataclass's default_factory costs, per request
        self.chat = chat
        self.untranslatable: list[tuple[str, str]] = []

    def cannot(self, param: str, reason: str) -> None:
        self.untranslatable.append((param, reason))


def invalid(param: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: {problem}", param=param)


def check_version(version: str | None) -> None:
    """`anthropic-version`, when sent, must be a version date (YYYY-MM-DD, from 2023-01-01 on) as the SDKs send."""
    if version is None or version in _SEEN_VERSIONS:
        return
    if not (_VERSION.fullmatch(version) and version >= FIRST_VERSION):
        raise invalid("anthropic-version", f"unknown version {version!r}; expected a version date such as "
                      "2023-06-01")
    if len(_SEEN_VERSIONS) < 64:
        _SEEN_VERSIONS.add(version)


def to_chat_body(body: Any, *, count_only: bool = False) -> Translation:
    """The chat body for a Messages body; `count_only` (count_tokens) needs no max_tokens and never streams."""
    if not isinstance(body, dict):
        raise invalid("body", "expected a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "Field required" if model is None else "expected a string")
    out = Translation({"model": model})
    messages = _system(body.get("system"))
    messages += _messages(body.get("messages"), out)
    out.chat["messages"] = messages
    if not count_only:
        limit = body.get("max_tokens")
        if limit is None:
            raise invalid("max_tokens", "Field required")
        if type(limit) is not int or limit < 1:  # exactly int: a bool is not a token count
            raise invalid("max_tokens", "expected an integer >= 1")
        out.chat["max_tokens"] = limit
    if not body.keys() <= _PLAIN:  # the options, checked only when there are any
        _options(body, out, count_only)
    return out


def _options(body: dict[str, Any], out: Translation, count_only: bool) -> None:
    if "tools" in body or "tool_choice" in body:
        _tools(body, out)
    _sampling(body, out)
    _thinking(body.get("thinking"), out)
    _output_config(body.get("output_config"), out)
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise invalid("stream", "expected a boolean")
    if body.get("stream") and not count_only:
        out.chat["stream"] = True
        out.chat["stream_options"] = {"include_usage": True}  # message_delta carries the final usage
    for name in body:
        if name not in _KNOWN and name not in ADVICE:
            out.cannot(name, "is not part of what the gateway translates for a non-Anthropic backend")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None:
        return []
    if type(system) is str:
        return [{"role": "system", "content": system}] if system else []
    if not isinstance(system, list):
        raise invalid("system", "expected a string or an array of text blocks")
    texts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise invalid(f"system.{i}", "expected a text block ({\"type\": \"text\", \"text\": ...})")
        texts.append(block["text"])
    return [{"role": "system", "content": "\n\n".join(texts)}] if texts else []


def _messages(messages: Any, out: Translation) -> list[dict[str, Any]]:
    if messages is None:
        raise invalid("messages", "Field required")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "expected a non-empty array of messages")
    chat: list[dict[str, Any]] = []
    tool_uses: set[str] = set()
    previous = None
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"messages.{i}", "expected an object")
        role = message.get("role")
        if role != "user" and role != "assistant":
            raise invalid(f"messages.{i}.role", f"expected 'user' or 'assistant', got {role!r}")
        if role == previous:
            raise invalid(f"messages.{i}.role", f"roles must alternate between 'user' and 'assistant' (messages.{i} "
                          f"repeats {role!r})")
        previous = role
        content = message.get("content")
        if type(content) is str:  # the common case, as chat clients write it too
            chat.append({"role": role, "content": content})
            continue
        where = f"messages.{i}"
        blocks = _blocks(content, f"{where}.content", role)
        if role == "user":
            chat += _user(blocks, f"{where}.content", tool_uses, out)
        else:
            chat.append(_assistant(blocks, f"{where}.content", tool_uses, out))
    return chat


def _blocks(content: Any, where: str, role: str) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        raise invalid(where, "expected a string or an array of content blocks")
    allowed = _USER_BLOCKS if role == "user" else _ASSISTANT_BLOCKS
    for j, block in enumerate(content):
        if not isinstance(block, dict):
            raise invalid(f"{where}.{j}", "expected a content block object")
        kind = block.get("type")
        if kind not in allowed:
            raise invalid(f"{where}.{j}.type", f"unknown or misplaced block type {kind!r} in a {role} message; "
                          f"expected one of {', '.join(sorted(allowed))}")
        if kind == "text" and not isinstance(block.get("text"), str):
            raise invalid(f"{where}.{j}.text", "expected a string")
    return content


def _user(blocks: list[dict[str, Any]], where: str, tool_uses: set[str], out: Translation) -> list[dict[str, Any]]:
    """Tool results become `tool` messages (which must follow the assistant's calls), the rest one user message."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        at = f"{where}.{j}"
        kind = block["type"]
        if kind == "tool_result":
            results.append(_tool_result(block, at, tool_uses, out))
        elif kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append(_image(block, at))
        elif kind == "document":
            parts.append(_document(block, at, out))
        else:
            out.cannot(f"{at}.type", f"block type {kind!r} has no chat counterpart")
    if not parts:
        return results
    return [*results, {"role": "user", "content": _content(parts)}]


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """One text part is plain text: the form chat clients send, so keys match across protocols."""
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def _tool_result(block: dict[str, Any], at: str, tool_uses: set[str], out: Translation) -> dict[str, Any]:
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise invalid(f"{at}.tool_use_id", "Field required")
    if tool_use_id not in tool_uses:
        raise invalid(f"{at}.tool_use_id", f"tool_result block for {tool_use_id!r} has no matching tool_use block "
                      "in an earlier assistant message")
    content = block.get("content")
    if content is None:
        text: str | list[dict[str, Any]] = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts = []
        for k, item in enumerate(content):
            if not isinstance(item, dict) or item.get("type") not in ("text", "image", "document", "search_result"):
                raise invalid(f"{at}.content.{k}.type", "expected a text, image, document or search_result block")
            if item["type"] == "text":
                if not isinstance(item.get("text"), str):
                    raise invalid(f"{at}.content.{k}.text", "expected a string")
                parts.append({"type": "text", "text": item["text"]})
            else:
                if item["type"] == "image":
                    _image(item, f"{at}.content.{k}")
                out.cannot(f"{at}.content.{k}", "a chat tool message carries text only")
        text = _content(parts) if parts else ""
    else:
        raise invalid(f"{at}.content", "expected a string or an array of content blocks")
    if block.get("is_error") is True and isinstance(text, str):
        text = f"Error: {text}"  # chat has no error flag on a tool result: the model still reads it as one
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}


def _image(block: dict[str, Any], at: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"{at}.source", "Field required")
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not media.startswith("image/"):
            raise invalid(f"{at}.source.media_type", "expected an image media type such as image/png")
        if not isinstance(data, str) or not data:
            raise invalid(f"{at}.source.data", "expected base64 image data")
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise invalid(f"{at}.source.url", "expected an http(s) URL")
        return {"type": "image_url", "image_url": {"url": url}}
    raise invalid(f"{at}.source.type", f"an image source must be 'base64' or 'url', got {kind!r}")


def _document(block: dict[str, Any], at: str, out: Translation) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"{at}.source", "Field required")
    if (block.get("citations") or {}).get("enabled"):
        out.cannot(f"{at}.citations", "citations are an Anthropic feature")
    kind = source.get("type")
    if kind == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    if kind == "base64" and isinstance(source.get("data"), str):
        media = source.get("media_type") or "application/pdf"
        file = {"file_data": f"data:{media};base64,{source['data']}"}
        if isinstance(block.get("title"), str):
            file["filename"] = block["title"]
        return {"type": "file", "file": file}
    if kind in ("url", "content", "file"):
        out.cannot(f"{at}.source.type", f"a {kind!r} document source has no chat counterpart")
        return {"type": "text", "text": ""}
    raise invalid(f"{at}.source.type", f"expected 'base64', 'text', 'url', 'content' or 'file', got {kind!r}")


def _assistant(blocks: list[dict[str, Any]], where: str, tool_uses: set[str], out: Translation) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        at = f"{where}.{j}"
        kind = block["type"]
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use":
            calls.append(_tool_use(block, at, tool_uses))
        elif kind in ("thinking", "redacted_thinking"):
            continue  # Anthropic documents earlier turns' thinking as ignored context: nothing to carry
        else:
            out.cannot(f"{at}.type", f"block type {kind!r} {_SERVER_RESULT}")
    message: dict[str, Any] = {"role": "assistant"}
    if texts or not calls:
        message["content"] = "".join(texts)
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_use(block: dict[str, Any], at: str, tool_uses: set[str]) -> dict[str, Any]:
    tool_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(tool_id, str) or not tool_id:
        raise invalid(f"{at}.id", "Field required")
    if not isinstance(name, str) or not name:
        raise invalid(f"{at}.name", "Field required")
    if not isinstance(arguments, dict):
        raise invalid(f"{at}.input", "expected an object")
    tool_uses.add(tool_id)
    return {"id": tool_id, "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(arguments).decode()}}


def _tools(body: dict[str, Any], out: Translation) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid("tools", "expected an array of tools")
        chat_tools = []
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise invalid(f"tools.{i}", "expected an object")
            if tool.get("type") not in (None, "custom"):
                out.cannot(f"tools.{i}.type", f"{tool.get('type')!r} is a server tool: only an Anthropic backend "
                           "runs it")
                continue
            name, schema = tool.get("name"), tool.get("input_schema")
            if not isinstance(name, str) or not name:
                raise invalid(f"tools.{i}.name", "Field required")
            if not isinstance(schema, dict):
                raise invalid(f"tools.{i}.input_schema", "Field required" if schema is None else "expected an object")
            function: dict[str, Any] = {"name": name}
            if isinstance(tool.get("description"), str):
                function["description"] = tool["description"]
            function["parameters"] = schema
            chat_tools.append({"type": "function", "function": function})
        if chat_tools:
            out.chat["tools"] = chat_tools
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise invalid("tool_choice.type", "expected 'auto', 'any', 'tool' or 'none'")
    kind = choice["type"]
    if kind == "tool":
        if not isinstance(choice.get("name"), str) or not choice["name"]:
            raise invalid("tool_choice.name", "Field required")
        out.chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        out.chat["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise invalid("tool_choice.disable_parallel_tool_use", "expected a boolean")
    if disable and "tools" in out.chat:
        out.chat["parallel_tool_calls"] = False


def _sampling(body: dict[str, Any], out: Translation) -> None:
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise invalid("stop_sequences", "expected an array of strings")
        if stops:
            out.chat["stop"] = stops
    for name, low, high in (("temperature", 0, 1), ("top_p", 0, 1)):
        value = body.get(name)
        if value is not None:
            if not _number(value) or not low <= value <= high:
                raise invalid(name, f"expected a number between {low} and {high}")
            out.chat[name] = value
    top_k = body.get("top_k")
    if top_k is not None:
        if not _is_int(top_k) or top_k < 0:
            raise invalid("top_k", "expected an integer >= 0")
        out.chat["top_k"] = top_k  # vLLM, llama.cpp and the Anthropic adapter take it; advice elsewhere
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise invalid("metadata", "expected an object")
        user = metadata.get("user_id")
        if user is not None and not isinstance(user, str):
            raise invalid("metadata.user_id", "expected a string")
        if user:
            out.chat["user"] = user
    tier = body.get("service_tier")
    if tier is not None and tier not in ("auto", "standard_only"):
        raise invalid("service_tier", "expected 'auto' or 'standard_only'")


def _thinking(thinking: Any, out: Translation) -> None:
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled", "adaptive"):
        raise invalid("thinking.type", "expected 'enabled', 'disabled' or 'adaptive'")
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if not _is_int(budget) or budget < 1024:
            raise invalid("thinking.budget_tokens", "expected an integer >= 1024")
    if thinking["type"] != "disabled":
        out.cannot("thinking", "extended thinking needs a backend that reasons and returns signed thinking blocks")


def _output_config(config: Any, out: Translation) -> None:
    """`format` (structured output by JSON schema) is chat's response_format; `effort` has no chat counterpart."""
    if config is None:
        return
    if not isinstance(config, dict):
        raise invalid("output_config", "expected an object")
    fmt = config.get("format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
            raise invalid("output_config.format", "expected {\"type\": \"json_schema\", \"schema\": {...}}")
        out.chat["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": fmt["schema"], "strict": True}}
    if config.get("effort") is not None:
        out.cannot("output_config.effort", "effort needs a backend that reasons")
