"""Graph JSON to syncd's records: cleaning values, dropping what cannot be used, merging delta objects.

Page bodies are decoded here with plain ``json`` data, never the SDK's models (which cost
~10 ms per user). Bad data is dropped field by field with a Problem naming the object and field.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from syncd.core.records import (
    USER_STRING_PROPERTIES,
    DeltaRound,
    DirectoryUser,
    Presence,
    Problem,
)


@dataclass
class Decoded:
    """Result of decoding one Graph object: the record (None if skipped) and what was wrong."""

    user: DirectoryUser | None = None
    problems: list[Problem] = field(default_factory=list)


MAX_VALUE_LENGTH = 256  # longer values are dropped, never truncated into something else
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_WHITESPACE_CONTROLS = re.compile("[\t\n\r\v\f\x85\u2028\u2029]+")
_OTHER_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")


def clean_text(value: str) -> tuple[str, list[str]]:
    """``value`` made safe to send, and what was changed (for a warning).

    Line breaks and tabs become spaces, other control characters and invalid UTF-16 halves
    (which cannot be encoded as UTF-8 at all) are removed; non-BMP characters are kept.
    """
    notes = []
    if _LONE_SURROGATE.search(value):
        value = _LONE_SURROGATE.sub("\ufffd", value)
        notes.append("invalid UTF-16 replaced")
    if _WHITESPACE_CONTROLS.search(value):
        value = _WHITESPACE_CONTROLS.sub(" ", value)
        notes.append("line breaks or tabs replaced by spaces")
    if _OTHER_CONTROLS.search(value):
        value = _OTHER_CONTROLS.sub("", value)
        notes.append("control characters removed")
    return value.strip(), notes


def usable_id(value: Any) -> TypeGuard[str]:
    """Whether ``value`` can key an object: a non-blank string of valid Unicode (an id holding
    a lone surrogate, which JSON's escapes allow, can be neither stored nor sent)."""
    return (
        isinstance(value, str)
        and bool(value.strip())
        and (value.isascii() or not _LONE_SURROGATE.search(value))
    )


def _decode_property(object_id: str, name: str, value: Any, problems: list[Problem]) -> str:
    """One string property, cleaned; "" (with a Problem) when it cannot be used."""
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append(Problem(object_id, name, f"expected a string, got {type(value).__name__}"))
        return ""
    cleaned, notes = clean_text(value)
    if notes:
        outcome = "sent cleaned" if cleaned else "nothing left after cleaning: dropped"
        problems.append(Problem(object_id, name, f"{outcome} ({', '.join(notes)})"))
    if len(cleaned) > MAX_VALUE_LENGTH:
        problems.append(
            Problem(
                object_id, name, f"{len(cleaned)} characters (over {MAX_VALUE_LENGTH}): dropped"
            )
        )
        return ""
    if name == "mail" and cleaned and not _ADDRESS.match(cleaned):
        problems.append(Problem(object_id, name, f"{cleaned!r} is not an e-mail address: dropped"))
        return ""
    return cleaned


def decode_user(obj: Mapping[str, Any]) -> Decoded:
    """Turn one Graph user JSON object into a DirectoryUser, dropping bad fields with a Problem.

    A user without a usable id or userPrincipalName cannot be keyed or matched: it is skipped.
    """
    result = Decoded()
    object_id = obj.get("id")
    if not usable_id(object_id):
        message = "object without an id: skipped"
        if isinstance(object_id, str) and object_id.strip():
            message = f"object id {object_id!r} is not valid Unicode: skipped"
        result.problems.append(Problem("<unknown>", "id", message, "error"))
        return result
    properties: dict[str, str] = {}
    for name in USER_STRING_PROPERTIES:
        value = _decode_property(object_id, name, obj.get(name), result.problems)
        if value:
            properties[name] = value
    upn = properties.get("userPrincipalName", "")
    if not upn:
        result.problems.append(
            Problem(object_id, "userPrincipalName", "missing or unusable: user skipped", "error")
        )
        return result
    if not _ADDRESS.match(upn):
        result.problems.append(
            Problem(
                object_id,
                "userPrincipalName",
                f"{upn!r} is not an address Learnster can use as userName: user skipped",
                "error",
            )
        )
        return result
    enabled = obj.get("accountEnabled", True)
    if isinstance(enabled, str) and enabled.strip().lower() in ("true", "false"):
        result.problems.append(
            Problem(object_id, "accountEnabled", f"string {enabled!r} read as a boolean")
        )
        enabled = enabled.strip().lower() == "true"
    elif not isinstance(enabled, bool):
        result.problems.append(
            Problem(
                object_id, "accountEnabled", f"expected a boolean, got {enabled!r}: taken as true"
            )
        )
        enabled = True
    phones_raw = obj.get("businessPhones") or []
    phones: list[str] = []
    if isinstance(phones_raw, list):
        phones = [
            p
            for p in (
                _decode_property(object_id, "businessPhones", x, result.problems)
                for x in phones_raw
            )
            if p
        ]
    else:
        result.problems.append(Problem(object_id, "businessPhones", "expected a list: dropped"))
    manager_id = _manager_id(obj)
    if manager_id == object_id:
        result.problems.append(Problem(object_id, "manager", "user is their own manager: ignored"))
        manager_id = None
    result.user = DirectoryUser(
        id=sys.intern(object_id),  # group memberships and manager links then share it
        properties=properties,
        account_enabled=enabled,
        business_phones=tuple(phones),
        manager_id=manager_id,
        extra={k: v for k, v in obj.items() if k not in _DECODED and not k.startswith("@")},
    )
    return result


# Graph's keys decode_user reads itself; any other property selected is kept as ``extra``.
_DECODED = frozenset(
    {*USER_STRING_PROPERTIES, "id", "accountEnabled", "businessPhones", "manager", "manager@delta"}
)


def _manager_id(obj: Mapping[str, Any]) -> str | None:
    manager = obj.get("manager")
    if isinstance(manager, Mapping):
        value = manager.get("id")
        return sys.intern(value) if usable_id(value) else None
    return None


def decode_delta_user(obj: Mapping[str, Any], base: DirectoryUser | None) -> Decoded:
    """Decode one users/delta object, merged over ``base`` (its properties before the round)."""
    merged: dict[str, Any] = _graph_shape(base) if base is not None else {}
    merged.update(obj)  # manager@delta itself is never kept as extra (_DECODED)
    if "manager@delta" in obj:
        merged["manager"] = _manager_from_delta(obj["manager@delta"])
    return decode_user(merged)


def _graph_shape(user: DirectoryUser) -> dict[str, Any]:
    shaped: dict[str, Any] = dict.fromkeys(USER_STRING_PROPERTIES)
    shaped.update(user.properties)
    shaped["id"] = user.id
    shaped["accountEnabled"] = user.account_enabled
    shaped["businessPhones"] = list(user.business_phones)
    shaped["manager"] = {"id": user.manager_id} if user.manager_id else None
    shaped.update(user.extra)
    return shaped


def _manager_from_delta(value: Any) -> dict[str, str] | None:
    if not isinstance(value, list):
        return None
    current = None
    for entry in value:
        if not isinstance(entry, Mapping) or not usable_id(entry.get("id")):
            continue
        current = None if isinstance(entry.get("@removed"), Mapping) else {"id": entry["id"]}
    return current


def merge_delta_object(result: DeltaRound, obj: Any) -> None:
    """Fold one delta object into the round: repeated objects merge, member lists concatenate."""
    if not isinstance(obj, dict) or not usable_id(obj.get("id")):
        return
    object_id = obj["id"]
    removed = obj.get("@removed")
    if isinstance(removed, dict):
        result.removed[object_id] = Presence.of_removed_reason(removed.get("reason"))
        result.objects.pop(object_id, None)
        return
    result.removed.pop(object_id, None)
    current = result.objects.setdefault(object_id, {"id": object_id})
    for key, value in obj.items():
        if key == "members@delta":
            if not isinstance(value, list):  # not a member list: no member changes
                continue
            # Compact (type, id, removed) triples: a big tenant's round holds 500,000 of them.
            members = current.setdefault("members@delta", [])
            members.extend(
                (
                    sys.intern(str(m.get("@odata.type", ""))),
                    sys.intern(m["id"]),  # shared with the user's own id: no copy per group
                    isinstance(m.get("@removed"), dict),
                )
                for m in value
                if isinstance(m, dict) and usable_id(m.get("id"))
            )
        elif not key.startswith("@"):
            current[key] = value
