"""The policies' settings: [auth], [limits] and [guards] of gateway.toml, and how each table is read.

gateway/config.py reads the file and builds Settings from these; policies and policy_setup import them from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llm_gateway.config.toml_reader import Table


@dataclass(frozen=True, slots=True)
class AuthSettings:
    mode: str = "none"  # none: anyone may call | keys: a virtual key (or the master key) is required
    master_key: str = ""  # administration (/ui figures, /metrics when required) and every alias
    cache_ttl_seconds: float = 5.0  # a key's lookup is reused this long: revocation takes effect within it
    spend_flush_seconds: float = 1.0  # spend and tokens are written to the state DB in batches this often

    @property
    def enabled(self) -> bool:
        return self.mode == "keys"


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Default per-key limits for keys created without their own; per-alias limits live on [models.x]."""

    rpm: int | None = None
    tpm: int | None = None
    counter: str = "memory"  # where the counters live: memory (one worker's own)
    max_messages: int | None = None  # more messages in one chat request: 400
    max_tokens: int | None = None  # a larger max_tokens / max_completion_tokens is clamped or rejected
    max_tokens_action: str = "clamp"  # clamp | reject

    @property
    def limits_requests(self) -> bool:
        return self.max_messages is not None or self.max_tokens is not None


PII_TYPES = ("email", "phone", "credit_card", "iban", "ip", "secret")
GUARD_NAMES = ("request_limits", "deny_list", "pii", "injection", "moderation")


@dataclass(frozen=True, slots=True)
class DenyListSettings:
    patterns: tuple[str, ...] = ()  # regular expressions, matched case-insensitively
    keywords: tuple[str, ...] = ()  # whole words, case-insensitive
    output: bool = True  # also cut answers (whole and streamed) that contain them


@dataclass(frozen=True, slots=True)
class PiiSettings:
    action: str = "off"  # off | redact | block
    types: tuple[str, ...] = PII_TYPES
    output: bool = False  # also redact (or cut, with block) answers


@dataclass(frozen=True, slots=True)
class InjectionSettings:
    action: str = "off"  # off | flag | block
    extra_patterns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModerationSettings:
    alias: str = ""  # empty: no moderation guard
    on_error: str = "allow"  # allow | deny: what to do when the moderation alias fails


@dataclass(frozen=True, slots=True)
class GuardSettings:
    order: tuple[str, ...] = GUARD_NAMES
    hold_back_chars: int = 64  # stream text held back so a pattern split across chunks is caught before it leaks
    deny_list: DenyListSettings = DenyListSettings()
    pii: PiiSettings = PiiSettings()
    injection: InjectionSettings = InjectionSettings()
    moderation: ModerationSettings = ModerationSettings()


def parse_auth(t: Table, warnings: list[str]) -> AuthSettings:
    d = AuthSettings()
    s = AuthSettings(
        mode=t.string("mode", d.mode, choices=("none", "keys")),
        master_key=t.string("master_key", d.master_key),
        cache_ttl_seconds=t.number("cache_ttl_seconds", d.cache_ttl_seconds, minimum=0, maximum=3600),
        spend_flush_seconds=t.number("spend_flush_seconds", d.spend_flush_seconds, minimum=0.01, maximum=3600),
    )
    t.finish()
    if s.master_key and len(s.master_key) < 16:
        t.error("master_key", f"too short to be a secret: {len(s.master_key)} characters, need at least 16")
    if s.enabled and not s.master_key:
        names = ", ".join(t.unset_env.get("master_key", ())) or "auth.master_key"
        warnings.append(f"auth.master_key: empty (set {names}); virtual keys work, administration is closed")
    return s


def parse_limits(t: Table) -> RateLimitSettings:
    d = RateLimitSettings()
    s = RateLimitSettings(
        rpm=t.integer("rpm", d.rpm, minimum=1),
        tpm=t.integer("tpm", d.tpm, minimum=1),
        counter=t.string("counter", d.counter, choices=("memory",)),
        max_messages=t.integer("max_messages", d.max_messages, minimum=1),
        max_tokens=t.integer("max_tokens", d.max_tokens, minimum=1),
        max_tokens_action=t.string("max_tokens_action", d.max_tokens_action, choices=("clamp", "reject")),
    )
    t.finish()
    return s


def parse_guards(t: Table) -> GuardSettings:
    d = GuardSettings()
    order = t.strings("order", d.order)
    for name in order:
        if name not in GUARD_NAMES:
            t.error("order", f"unknown guard {name!r} (known: {', '.join(GUARD_NAMES)})")
    deny_t, pii_t, inj_t, mod_t = (t.table(n) for n in ("deny_list", "pii", "injection", "moderation"))
    deny = DenyListSettings(
        patterns=_regexes(deny_t, "patterns"),
        keywords=deny_t.strings("keywords"),
        output=deny_t.boolean("output", d.deny_list.output),
    )
    pii = PiiSettings(
        action=pii_t.string("action", d.pii.action, choices=("off", "redact", "block")),
        types=pii_t.strings("types", PII_TYPES),
        output=pii_t.boolean("output", d.pii.output),
    )
    for name in pii.types:
        if name not in PII_TYPES:
            pii_t.error("types", f"unknown PII type {name!r} (known: {', '.join(PII_TYPES)})")
    injection = InjectionSettings(
        action=inj_t.string("action", d.injection.action, choices=("off", "flag", "block")),
        extra_patterns=_regexes(inj_t, "extra_patterns"),
    )
    moderation = ModerationSettings(
        alias=mod_t.string("alias", d.moderation.alias),
        on_error=mod_t.string("on_error", d.moderation.on_error, choices=("allow", "deny")),
    )
    s = GuardSettings(
        order=order,
        hold_back_chars=t.integer("hold_back_chars", d.hold_back_chars, minimum=1, maximum=4096),
        deny_list=deny, pii=pii, injection=injection, moderation=moderation,
    )
    for sub in (deny_t, pii_t, inj_t, mod_t, t):
        sub.finish()
    return s


def _regexes(t: Table, key: str) -> tuple[str, ...]:
    """Patterns that compile; a bad one is reported with its index, before serving."""
    patterns = t.strings(key)
    for i, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            t.problems.append(f"{t.path}.{key}[{i}]: not a regular expression: {exc}")
    return patterns
