"""The mock provider's /v1/moderations: OpenAI's published shape, answered deterministically.

Text is flagged by a small built-in word list per category and by the patterns the gateway is configured to deny
([guards.deny_list], handed over by the composition root, flagged as `illicit`); scores are stable functions of the
input (the same text always scores the same), high for a flagged category and tiny otherwise.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

# every category OpenAI reports, and the input types each one is judged on (omni-moderation: images for some)
CATEGORIES: dict[str, tuple[str, ...]] = {
    "harassment": ("text",),
    "harassment/threatening": ("text",),
    "hate": ("text",),
    "hate/threatening": ("text",),
    "illicit": ("text",),
    "illicit/violent": ("text",),
    "self-harm": ("text", "image"),
    "self-harm/instructions": ("text", "image"),
    "self-harm/intent": ("text", "image"),
    "sexual": ("text", "image"),
    "sexual/minors": ("text",),
    "violence": ("text", "image"),
    "violence/graphic": ("text", "image"),
}
_BUILT_IN: dict[str, tuple[str, ...]] = {
    "harassment": ("idiot", "loser", "worthless"),
    "harassment/threatening": ("i will hurt you", "you will regret"),
    "hate": ("subhuman", "vermin"),
    "illicit": ("make meth", "counterfeit money", "steal a car"),
    "illicit/violent": ("build a bomb", "make a weapon"),
    "self-harm": ("self-harm", "hurt myself"),
    "self-harm/instructions": ("how to cut myself",),
    "self-harm/intent": ("kill myself", "end my life"),
    "violence": ("kill", "murder", "stab"),
    "violence/graphic": ("gore", "dismember"),
}
_RULES = {category: re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)
          for category, words in _BUILT_IN.items()}


def moderation(body: dict[str, Any], model: str, deny: Iterable[re.Pattern[str]] = ()) -> dict[str, Any]:
    """The answer to one /v1/moderations body: one result per string input, one for a multi-modal array."""
    deny = tuple(deny)
    inputs = body.get("input")
    if isinstance(inputs, str):
        groups = [([inputs], False)]
    elif isinstance(inputs, list) and all(isinstance(i, str) for i in inputs):
        groups = [([text], False) for text in inputs]
    else:
        parts = [p for p in inputs or [] if isinstance(p, dict)]
        texts = [str(p.get("text") or "") for p in parts if p.get("type") == "text"]
        groups = [(texts, any(p.get("type") == "image_url" for p in parts))]
    results = [_result("\n".join(texts), has_image, deny) for texts, has_image in groups]
    digest = hashlib.sha256(repr(inputs).encode()).hexdigest()[:24]
    return {"id": f"modr-{digest}", "model": model, "results": results}


def _result(text: str, has_image: bool, deny: tuple[re.Pattern[str], ...]) -> dict[str, Any]:
    hits = {category for category, rule in _RULES.items() if rule.search(text)}
    if any(pattern.search(text) for pattern in deny):
        hits.add("illicit")
    categories = {category: category in hits for category in CATEGORIES}
    scores = {category: _score(text, category, category in hits) for category in CATEGORIES}
    applied = {category: [t for t in types if t == "text" or has_image] for category, types in CATEGORIES.items()}
    return {
        "flagged": bool(hits),
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": applied,
    }


def _score(text: str, category: str, hit: bool) -> float:
    """A stable score: 0.9..0.99 when flagged, below 0.001 otherwise, derived from the text and the category."""
    fraction = int(hashlib.sha256(f"{category}\0{text}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return round(0.9 + 0.09 * fraction, 6) if hit else round(0.001 * fraction, 8)
