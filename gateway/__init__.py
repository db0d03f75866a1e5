"""llm-gateway: an OpenAI-compatible gateway that records and replays."""

__version__ = "0.1.0"
