"""A short, readable diff between two normalized requests, for replay-miss messages."""

from __future__ import annotations

from typing import Any

MAX_DIFFERENCES = 5
_SHOW = 60


def differences(recorded: Any, asked: Any, path: str = "", limit: int = MAX_DIFFERENCES) -> list[str]:
    """Up to `limit` lines `path: recorded -> asked`, in document order."""
    out: list[str] = []
    _walk(recorded, asked, path, out, limit)
    return out


def _walk(a: Any, b: Any, path: str, out: list[str], limit: int) -> None:
    if len(out) >= limit or a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for name in sorted(set(a) | set(b), key=lambda n: (n not in a, n)):
            where = f"{path}.{name}" if path else name
            if name not in b:
                out.append(f"{where}: {_show(a[name])} -> (absent)")
            elif name not in a:
                out.append(f"{where}: (absent) -> {_show(b[name])}")
            else:
                _walk(a[name], b[name], where, out, limit)
            if len(out) >= limit:
                return
        return
    if isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            where = f"{path}[{i}]"
            if i >= len(b):
                out.append(f"{where}: {_show(a[i])} -> (absent)")
            elif i >= len(a):
                out.append(f"{where}: (absent) -> {_show(b[i])}")
            else:
                _walk(a[i], b[i], where, out, limit)
            if len(out) >= limit:
                return
        return
    if isinstance(a, str) and isinstance(b, str):
        out.append(f"{path}: {_around(a, b)}")
        return
    out.append(f"{path}: {_show(a)} -> {_show(b)}")


def _around(a: str, b: str) -> str:
    """Both strings cut around their first difference, so a long prompt shows where it changed."""
    if len(a) <= _SHOW and len(b) <= _SHOW:
        return f"{a!r} -> {b!r}"
    start = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    lo = max(0, start - 20)
    prefix = "…" if lo else ""

    def cut(s: str) -> str:
        piece = s[lo:lo + _SHOW]
        return repr(prefix + piece + ("…" if lo + _SHOW < len(s) else ""))

    return f"{cut(a)} -> {cut(b)}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOW else text[: _SHOW - 1] + "…"
