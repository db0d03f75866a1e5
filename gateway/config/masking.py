"""What `gateway check` may print of the settings: every secret masked, every URL's userinfo gone.

`masked(settings)` takes the resolved Settings (settings.py builds them and reports URL mistakes with the same
`without_userinfo`, so an error message never shows a credential either).
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any


def masked(settings: Any) -> dict[str, Any]:
    """The resolved settings as plain data with every secret masked, for `gateway check`: keys, every header value
    (a cookie or a tenant id is as private as a key) and the credentials inside any URL."""
    data = without_userinfo(asdict(settings))
    for p in data["providers"].values():
        if p["api_key"]:
            p["api_key"] = mask(p["api_key"])
        p["headers"] = {k: "****" for k in p["headers"]}
    data["tracing"]["headers"] = [(k, "****") for k, _ in data["tracing"]["headers"]]
    if data["auth"]["master_key"]:
        data["auth"]["master_key"] = mask(data["auth"]["master_key"])
    return data


def without_userinfo(value: Any) -> Any:
    """`scheme://user:secret@host` as `scheme://****@host`, wherever a URL sits in the settings."""
    if isinstance(value, dict):
        return {k: without_userinfo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_userinfo(v) for v in value]
    if isinstance(value, str) and "@" in value and "://" in value:
        return URL_USERINFO.sub(r"\1****@", value)
    return value


URL_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@")


def mask(value: str) -> str:
    return "****" if len(value) < 12 else f"{value[:3]}****{value[-2:]}"
