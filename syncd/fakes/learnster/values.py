"""SCIM errors and attribute values of the fake Learnster: coercion to canonical form, merges."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final

from syncd.fakes._http import Response
from syncd.fakes.learnster.schema import CONTENT_TYPE, ERROR_SCHEMA, Resource, _Attr


class ScimFault(Exception):
    """A SCIM error response (RFC 7644 §3.12); also raised by ``add_user``/``add_group``."""

    def __init__(
        self,
        status: int,
        detail: str,
        scim_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {scim_type or ''}: {detail}")
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = headers or {}

    def payload(self) -> dict[str, Any]:
        """The error as a SCIM ``Error`` message."""
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status)}
        if self.scim_type:
            body["scimType"] = self.scim_type
        body["detail"] = self.detail
        return body

    def response(self) -> Response:
        """The error as an HTTP response."""
        headers = {"Content-Type": CONTENT_TYPE, **self.headers}
        return Response(self.status, json.dumps(self.payload()).encode(), headers)


def _invalid(detail: str) -> ScimFault:
    return ScimFault(400, detail, "invalidValue")


# --------------------------------------------------------------------------- helpers


class _Unset:
    """Marker: the value is unassigned (null, empty) and the attribute must be left out."""


UNSET: Final = _Unset()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _content(resource: Resource) -> Resource:
    return {k: v for k, v in resource.items() if k != "meta"}


def _lower_keys(obj: dict[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in obj.items()}


def _coerce(attr: _Attr, value: Any, where: str) -> Any:
    """Validate ``value`` for ``attr`` and return it in canonical form, or ``UNSET``."""
    if value is None:
        return UNSET
    if attr.multi:
        if not isinstance(value, list):
            raise _invalid(f"{where} must be an array")
        items = [c for v in value if (c := _coerce_one(attr, v, where)) is not UNSET]
        return items or UNSET
    return _coerce_one(attr, value, where)


def _coerce_one(attr: _Attr, value: Any, where: str) -> Any:
    kind = attr.type
    if kind == "complex":
        if isinstance(value, str) and not attr.multi and "value" in attr.subs:
            value = {"value": value}  # Entra's legacy form for the manager
        if not isinstance(value, dict):
            raise _invalid(f"{where} must be an object, got {json.dumps(value)}")
        out: dict[str, Any] = {}
        for key, sub_value in value.items():
            sub = attr.subs.get(str(key).lower())
            if sub is None or sub.mutability == "readOnly":
                continue
            coerced = _coerce(sub, sub_value, f"{where}.{sub.name}")
            if coerced is not UNSET:
                out[sub.name] = coerced
        return out or UNSET
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"  # Entra sends "True"/"False"
    elif kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind == "decimal":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    elif isinstance(value, str):
        return value
    raise _invalid(f"{where} must be a {kind}, got {json.dumps(value)}")


def _set_or_drop(container: dict[str, Any], key: str, value: Any) -> None:
    if value is UNSET:
        container.pop(key, None)
    else:
        container[key] = value


def _merge_elements(existing: list[Any], new_items: list[Any], attr: _Attr) -> list[Any]:
    """RFC 7644 §3.5.2.1 ``add`` to a multi-valued attribute, merging by ``type`` or ``value``.

    Indexed by value and type so adding a batch to a tag with thousands of members stays linear.
    """
    if attr.name == "members":
        # Members are merged by value in _group_rules, which keeps the first of duplicates.
        return [*existing, *new_items]
    result = list(existing)
    by_type = "type" in attr.subs
    values: dict[Any, int] = {}
    types: dict[str, int] = {}

    def remember(i: int, element: Any) -> None:
        if isinstance(element, dict):
            if isinstance(element.get("value"), str):
                values.setdefault(element["value"], i)
            if by_type and isinstance(element.get("type"), str):
                types.setdefault(element["type"].lower(), i)

    for i, element in enumerate(result):
        remember(i, element)
    for item in new_items:
        hit: int | None = None
        if isinstance(item, dict):
            kind, value = item.get("type"), item.get("value")
            if by_type and isinstance(kind, str) and kind.lower() in types:
                hit = types[kind.lower()]
            elif isinstance(value, str) and value in values:
                hit = values[value]
        if hit is None:
            if item in result:
                continue  # identical values are not added twice
            result.append(item)
            hit = len(result) - 1
        else:
            result[hit] = {**result[hit], **item}
        remember(hit, result[hit])
        _single_primary(result, result[hit])
    return result


def _single_primary(items: list[Any], chosen: Any) -> None:
    # RFC 7644 §3.5.2: setting "primary" true on one value sets it false on the others.
    if not (isinstance(chosen, dict) and chosen.get("primary") is True):
        return
    for i, other in enumerate(items):
        if other is not chosen and isinstance(other, dict) and other.get("primary") is True:
            items[i] = {**other, "primary": False}
