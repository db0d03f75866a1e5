"""Backends: one per file, each implementing gateway.types.Adapter."""
