"""POST /v1/messages as Anthropic publishes it, over the chat pipeline: `request` (a Messages body -> the canonical
chat body, checked), `answer` (a chat completion -> a `message`), `events` (chunks -> Anthropic's event sequence),
`api` (the Wire that joins them, Anthropic's errors and rate-limit headers, count_tokens)."""
