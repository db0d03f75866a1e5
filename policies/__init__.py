"""Policies: one concern per file, each a small class with before / after / on_chunk (gateway.types.Policy)."""
