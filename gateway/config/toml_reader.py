"""Typed reads from a parsed TOML table that collect every mistake with its TOML path.

`${VAR}` and `${VAR:-default}` in strings are expanded from the environment given to the reader.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ANY_REF = re.compile(r"\$\{[^}]*\}?")  # anything that starts like a reference: what _ENV_REF did not take is malformed
_SECRETS = ("api_key", "master_key")  # may stay unset: their owners warn ("set OPENAI_API_KEY"), the start goes on
_MISSING = object()


class ConfigError(Exception):
    """Raised once, with every problem found, before the gateway serves."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def expand_env(value: str, env: Mapping[str, str], unset: list[str] | None = None) -> str:
    """Expand ${VAR} / ${VAR:-default}; names of unset variables without a default go to `unset`."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and (env[name] != "" or default is None):
            return env[name]
        if default is not None:
            return default
        if unset is not None:
            unset.append(name)
        return ""

    return _ENV_REF.sub(substitute, value)


def malformed_refs(value: str) -> list[str]:
    """`${VAR` (unclosed), `${1BAD}`, `${}`: references expand_env would leave in the text as they are."""
    return [m.group(0) for m in _ANY_REF.finditer(_ENV_REF.sub("", value))]


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}.get(
        type(value), type(value).__name__
    )


class Table:
    """One TOML table at `path`; reads mark keys as used so leftovers are reported as unknown."""

    def __init__(self, data: Mapping[str, Any], path: str, problems: list[str], env: Mapping[str, str]) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        self.env = env
        self.used: set[str] = set()
        self.unset_env: dict[str, list[str]] = {}

    def _at(self, key: str) -> str:
        key_text = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else f'"{key}"'
        return f"{self.path}.{key_text}" if self.path else key_text

    def error(self, key: str, message: str) -> None:
        self.problems.append(f"{self._at(key)}: {message}")

    def _get(self, key: str, default: Any) -> Any:
        self.used.add(key)
        return self.data.get(key, default)

    def has(self, key: str) -> bool:
        return key in self.data

    def string(self, key: str, default: Any = "", *, choices: Iterable[str] | None = None) -> Any:
        value = self._get(key, _MISSING)
        if value is _MISSING:
            return default
        if not isinstance(value, str):
            self.error(key, f"expected a string, got {_type_name(value)}")
            return default
        value = self._expanded(key, value)
        if choices is not None:
            options = list(choices)
            if value not in options:
                self.error(key, f"expected one of {', '.join(repr(o) for o in options)}, got {value!r}")
                return default
        return value

    def integer(self, key: str, default: Any, *, minimum: int | None = None, maximum: int | None = None) -> Any:
        value = self._get(key, _MISSING)
        if value is _MISSING:
            return default
        if isinstance(value, str):
            value = self._coerce_env(key, value, int)
        if isinstance(value, bool) or not isinstance(value, int):
            if value is not None:
                self.error(key, f"expected an integer, got {_type_name(value)}")
            return default
        return self._in_range(key, value, minimum, maximum, default)

    def number(self, key: str, default: Any, *, minimum: float | None = None, maximum: float | None = None) -> Any:
        value = self._get(key, _MISSING)
        if value is _MISSING:
            return default
        if isinstance(value, str):
            value = self._coerce_env(key, value, float)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if value is not None:
                self.error(key, f"expected a number, got {_type_name(value)}")
            return default
        return self._in_range(key, float(value), minimum, maximum, default)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, _MISSING)
        if value is _MISSING:
            return default
        if isinstance(value, str):
            text = self._expanded(key, value).strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off", ""):
                return False
        if not isinstance(value, bool):
            self.error(key, f"expected true or false, got {_type_name(value)}")
            return default
        return value

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._get(key, _MISSING)
        if value is _MISSING:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(key, "expected an array of strings")
            return default
        return tuple(self._expanded(key, v) for v in value)

    def table(self, key: str) -> Table:
        value = self._get(key, _MISSING)
        if value is _MISSING:
            value = {}
        elif not isinstance(value, dict):
            self.error(key, f"expected a table, got {_type_name(value)}")
            value = {}
        return Table(value, self._at(key), self.problems, self.env)

    def tables(self, key: str) -> list[Table]:
        """An array of tables (`[[x]]` or `x = [{...}]`)."""
        value = self._get(key, _MISSING)
        if value is _MISSING:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.error(key, "expected an array of tables")
            return []
        return [Table(v, f"{self._at(key)}[{i}]", self.problems, self.env) for i, v in enumerate(value)]

    def string_map(self, key: str) -> dict[str, str]:
        sub = self.table(key)
        result: dict[str, str] = {}
        for name in sub.data:
            result[name] = sub.string(name)
        return result

    def children(self) -> list[tuple[str, Table]]:
        """Each sub-table of this table, for tables keyed by user-chosen names ([providers.x], [models.y])."""
        return [(name, self.table(name)) for name in list(self.data)]

    def finish(self) -> None:
        """Report keys nobody read: almost always a typo."""
        for key in self.data:
            if key not in self.used:
                self.error(key, "unknown key")

    def _expanded(self, key: str, value: str) -> str:
        """`value` with its references expanded; malformed ones, and unset variables outside secrets, reported."""
        for ref in malformed_refs(value):
            self.error(key, f"malformed reference {ref!r}: write ${{NAME}} or ${{NAME:-default}} (NAME: letters, "
                            "digits and _, not starting with a digit)")
        unset: list[str] = []
        value = expand_env(value, self.env, unset)
        if unset:
            self.unset_env[key] = unset
            if key not in _SECRETS:
                names = ", ".join(unset)
                self.error(key, f"environment variable {names} is not set (give a default: ${{{unset[0]}:-...}})")
        return value

    def _coerce_env(self, key: str, value: str, kind: type) -> Any:
        text = self._expanded(key, value).strip()
        if not text and key in self.unset_env:
            return None  # reported by _expanded, with the variable's name
        try:
            return kind(text)
        except ValueError:
            self.error(key, f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
            return None

    def _in_range(self, key: str, value: Any, minimum: Any, maximum: Any, default: Any) -> Any:
        if minimum is not None and value < minimum:
            self.error(key, f"must be >= {minimum}, got {value}")
            return default
        if maximum is not None and value > maximum:
            self.error(key, f"must be <= {maximum}, got {value}")
            return default
        return value
