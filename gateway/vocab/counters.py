"""Event counts as a layer keeps them (a slots dataclass, a plain object or a dict), read as (name, int) pairs.

Policies and the recorder count what they do in whatever shape suits them; observability reads them all this way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def int_counters(source: Any) -> Iterable[tuple[str, int]]:
    """(name, value) of the int fields of a counters object: a dataclass with slots, a plain object or a dict."""
    if source is None:
        return ()
    if isinstance(source, Mapping):
        items: Iterable[tuple[Any, Any]] = source.items()
    else:
        names = list(getattr(source, "__slots__", ())) or list(getattr(source, "__dict__", {}))
        items = ((n, getattr(source, n, None)) for n in names)
    out: list[tuple[str, int]] = []
    for n, v in items:
        if isinstance(v, Mapping):  # e.g. redactions by PII type: a bounded set of names the policy defines
            out.extend((f"{n}_{k}", c) for k, c in v.items() if isinstance(c, int) and not isinstance(c, bool))
        elif isinstance(v, int) and not isinstance(v, bool):
            out.append((str(n), v))
    return out
