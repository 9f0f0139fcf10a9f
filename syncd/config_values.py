"""Typed values of syncd.toml's tables: each wrong value raises ConfigError naming its key."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from syncd.credentials import is_loopback_host
from syncd.errors import ConfigError


def no_unknown(table: Mapping[str, Any], known: set[str], source: str, section: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        where = f"[{section}] " if section else ""
        raise ConfigError(
            f"{source}: unknown setting {where}{unknown[0]!r}; known: {', '.join(sorted(known))}"
        )


def table_of(
    data: Mapping[str, Any], name: str, source: str, label: str | None = None
) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: [{label or name}] must be a table")
    return value


def string(
    table: Mapping[str, Any], key: str, section: str, source: str, *, required: bool = False
) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"{source}: [{section}] {key} must be a string")
    if required and not value.strip():
        raise ConfigError(f"{source}: [{section}] {key} is required")
    return value.strip()


def choice(
    table: Mapping[str, Any],
    key: str,
    choices: tuple[str, ...],
    default: str,
    section: str,
    source: str,
) -> str:
    value = table.get(key, default)
    if value not in choices:
        shown = " | ".join(c for c in choices if c)
        raise ConfigError(f"{source}: [{section}] {key} = {value!r} must be one of: {shown}")
    return str(value)


def whole(
    table: Mapping[str, Any],
    key: str,
    default: int,
    section: str,
    source: str,
    *,
    low: int | None = None,
    high: int | None = None,
) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{source}: [{section}] {key} must be a whole number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{source}: [{section}] {key} = {value} is out of range [{low}, {high}]")
    return value


def number(
    table: Mapping[str, Any],
    key: str,
    default: float,
    section: str,
    source: str,
    *,
    allow_zero: bool = False,
) -> float:
    value = table.get(key, default)
    valid = isinstance(value, int | float) and not isinstance(value, bool)
    # TOML has nan and inf; neither is a duration or a count.
    if not valid or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        kind = "a number ≥ 0" if allow_zero else "a positive number"
        raise ConfigError(f"{source}: [{section}] {key} must be {kind}")
    return float(value)


def boolean(table: Mapping[str, Any], key: str, default: bool, section: str, source: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{source}: [{section}] {key} must be true or false")
    return value


def url(table: Mapping[str, Any], key: str, default: str | None, section: str, source: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source}: [{section}] {key} is required (an https:// URL)")
    parts = urlsplit(value)
    if parts.username is not None or parts.password is not None:  # said without echoing it
        raise ConfigError(f"{source}: [{section}] {key} must not carry a user name or password")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"{source}: [{section}] {key} = {value!r} is not a URL")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"{source}: [{section}] {key} must use https (plain http is only allowed on loopback)"
        )
    return value
