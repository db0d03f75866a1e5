"""The client's protocols around the engine: a body in, one internal Call; an answer or chunks out.

`schema` (validation naming the field, unknown fields kept), `openai_wire` (the Wire and Framer protocols, and
OpenAI's own shapes, passed as they are), `responses/` (the Responses API as a translation over chat),
`anthropic/` (Anthropic's Messages API: translated over chat, and carried natively to an Anthropic backend).
"""
