"""A small end-to-end suite driven through the openai SDK: recorded once, then replayed and compared.

Each entry is what a test would look at: ids, content, tool calls, usage and, for streams, every chunk as parsed.
"""

from __future__ import annotations

from typing import Any

import openai

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def run_suite(client: openai.OpenAI) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ask = [{"role": "user", "content": "What is the capital of France?"}]
    out["chat"] = client.chat.completions.create(model="echo", messages=ask, temperature=0).model_dump()
    out["chat_stream"] = [
        c.model_dump()
        for c in client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "Tell me a story about a lighthouse."}],
            stream=True,
            stream_options={"include_usage": True},
        )
    ]
    weather = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = client.chat.completions.create(model="tools", messages=weather, tools=[WEATHER_TOOL])
    out["tool_call"] = first.model_dump()
    call = first.choices[0].message.tool_calls[0]
    follow_up = weather + [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    out["tool_result"] = client.chat.completions.create(
        model="tools", messages=follow_up, tools=[WEATHER_TOOL]
    ).model_dump()
    out["tool_stream"] = [
        c.model_dump()
        for c in client.chat.completions.create(model="tools", messages=weather, tools=[WEATHER_TOOL], stream=True)
    ]
    out["completion"] = client.completions.create(model="echo", prompt="Once upon a time", max_tokens=5).model_dump()
    out["embedding"] = client.embeddings.create(
        model="echo", input=["alpha", "beta"], encoding_format="float"
    ).model_dump()
    return out
