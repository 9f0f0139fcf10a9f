"""The fake Graph's directory objects: their types, properties and the defaults of unset ones."""

from __future__ import annotations

import functools
import re
import uuid
from typing import Any

from syncd.fakes.graph.base import _ApiError
from syncd.fakes.scoping import DIRECTORY_EXTENSIONS, EXTENSION_ATTRIBUTES

USER = "#microsoft.graph.user"
GROUP = "#microsoft.graph.group"
DEVICE = "#microsoft.graph.device"
CONTACT = "#microsoft.graph.orgContact"

# What Graph v1.0 returns for a user when the request has no $select.
USER_DEFAULT_SELECT: tuple[str, ...] = (
    "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
    "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id",
)  # fmt: skip
# Properties the generator does not produce; stored users hold them only when set.
_USER_EXTRA: dict[str, Any] = {
    "userType": "Member",
    "usageLocation": None,
    "employeeType": None,
    "employeeHireDate": None,
    "otherMails": [],
    "imAddresses": [],
    "onPremisesSyncEnabled": None,
    "onPremisesImmutableId": None,
    "onPremisesSamAccountName": None,
    "onPremisesUserPrincipalName": None,
    "deletedDateTime": None,
    "ageGroup": None,
    "showInAddressList": None,
    "externalUserState": None,
    "onPremisesExtensionAttributes": None,  # reads as its 15 attributes, each null
}
_USER_NOT_NULL = frozenset(
    {
        "businessPhones", "otherMails", "imAddresses", "proxyAddresses", "accountEnabled",
        "userType", "onPremisesExtensionAttributes",
    }
)  # fmt: skip
USER_PROPERTIES: frozenset[str] = frozenset(
    (
        "id", "userPrincipalName", "accountEnabled", "displayName", "givenName", "surname",
        "jobTitle", "mail", "mailNickname", "officeLocation", "streetAddress", "city",
        "postalCode", "state", "country", "businessPhones", "mobilePhone", "companyName",
        "department", "employeeId", "preferredLanguage", "faxNumber", "createdDateTime",
        "proxyAddresses", *_USER_EXTRA, *DIRECTORY_EXTENSIONS,
    )
)  # fmt: skip
GROUP_PROPERTIES: frozenset[str] = frozenset(
    (
        "id", "displayName", "mailNickname", "description", "securityEnabled", "mailEnabled",
        "groupTypes", "mail", "createdDateTime", "visibility", "deletedDateTime",
        "onPremisesSyncEnabled", "classification", "membershipRule", "proxyAddresses",
        "isAssignableToRole", "securityIdentifier",
    )
)  # fmt: skip
GROUP_DEFAULT_SELECT: tuple[str, ...] = tuple(sorted(GROUP_PROPERTIES))
_ALL_USER_PROPERTIES: tuple[str, ...] = tuple(sorted(USER_PROPERTIES))
DEVICE_PROPERTIES: tuple[str, ...] = (
    "id", "displayName", "deviceId", "operatingSystem", "operatingSystemVersion",
    "accountEnabled", "trustType",
)  # fmt: skip
CONTACT_PROPERTIES: tuple[str, ...] = (
    "id", "displayName", "mail", "givenName", "surname", "companyName", "jobTitle",
    "mailNickname",
)  # fmt: skip
_EXTENSION_NAME = re.compile(r"extension_[0-9a-f]{32}_\w+", re.IGNORECASE)
_DIRECTORY_PROPERTIES = {
    p.lower(): p
    for p in (*USER_PROPERTIES, *GROUP_PROPERTIES, *DEVICE_PROPERTIES, *CONTACT_PROPERTIES)
}


def _user_default(user: dict[str, Any], key: str) -> Any:
    """The value Graph shows for a property the stored user does not hold."""
    if key in ("businessPhones", "otherMails", "imAddresses"):
        return []
    if key == "proxyAddresses":
        mail = user.get("mail")
        return [f"SMTP:{mail}"] if mail else []
    if key == "accountEnabled":
        return True
    if key == "onPremisesExtensionAttributes":
        return dict.fromkeys(EXTENSION_ATTRIBUTES)
    return _USER_EXTRA.get(key)


@functools.lru_cache(maxsize=256)
def _needs_default(select: tuple[str, ...]) -> tuple[str, ...]:
    """The selected properties whose absence does not mean null."""
    return tuple(k for k in select if k in _USER_NOT_NULL)


@functools.lru_cache(maxsize=256)
def _extensions_in(select: tuple[str, ...]) -> tuple[str, ...]:
    """The selected directory extensions: Graph leaves out those a user has no value for."""
    return tuple(k for k in select if k in DIRECTORY_EXTENSIONS)


def _unknown_extension(name: str) -> _ApiError | None:
    """Graph's answer to a directory extension it does not know, for ``$select`` and ``$filter``."""
    if _EXTENSION_NAME.fullmatch(name) is None:
        return None
    return _ApiError(
        400,
        "Request_UnsupportedQuery",
        f"Property '{name}' does not exist as a declared property or extension property.",
    )


# the properties whose values a change must check
_CHECKED_USER_PROPERTIES = frozenset({"onPremisesExtensionAttributes", *DIRECTORY_EXTENSIONS})


def _user_update(user: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    """``props`` as stored: a partial ``onPremisesExtensionAttributes`` merged as PATCH does."""
    if props.keys().isdisjoint(_CHECKED_USER_PROPERTIES):
        return props
    for name, value in props.items():
        kind = DIRECTORY_EXTENSIONS.get(name)
        if kind is not None and value is not None and not isinstance(value, kind):
            raise ValueError(f"{name} takes a {kind.__name__}, not {value!r}")
    if "onPremisesExtensionAttributes" not in props:
        return props
    partial = props["onPremisesExtensionAttributes"]
    if not isinstance(partial, dict):
        raise ValueError("onPremisesExtensionAttributes takes an object")
    unknown = set(partial) - set(EXTENSION_ATTRIBUTES)
    if unknown:
        raise ValueError(
            f"Property '{sorted(unknown)[0]}' does not exist on type "
            "'microsoft.graph.onPremisesExtensionAttributes'."
        )
    if any(v is not None and not isinstance(v, str) for v in partial.values()):
        raise ValueError("extension attributes take strings")
    if user.get("onPremisesSyncEnabled"):
        raise ValueError(
            "onPremisesExtensionAttributes of a user synced from on-premises is read-only"
        )
    current = user.get("onPremisesExtensionAttributes") or dict.fromkeys(EXTENSION_ATTRIBUTES)
    return {**props, "onPremisesExtensionAttributes": {**current, **partial}}


def _group_defaults(props: dict[str, Any], created: str) -> dict[str, Any]:
    group: dict[str, Any] = dict.fromkeys(GROUP_PROPERTIES)
    group.update(
        securityEnabled=True,
        mailEnabled=False,
        groupTypes=[],
        proxyAddresses=[],
        createdDateTime=created,
        securityIdentifier=f"S-1-12-1-{uuid.UUID(props['id']).int % 10**10}",
    )
    group.update(props)
    if not group.get("mailNickname"):
        group["mailNickname"] = re.sub(r"[^A-Za-z0-9-]", "", str(group["displayName"])) or "grp"
    return group


def _user_body(
    user: dict[str, Any], select: tuple[str, ...], *, keep_null: bool = False
) -> dict[str, Any]:
    """The selected properties; ``keep_null``: also extensions without value (a delta's change)."""
    # stored values are never mutated in place (updates assign new lists), so the body may share
    # them with the store while it is serialised outside the lock
    body = {k: user.get(k) for k in select}
    for key in _needs_default(select):
        if key not in user:
            body[key] = _user_default(user, key)
    if not keep_null:
        for key in _extensions_in(select):
            if body[key] is None:
                del body[key]
    return body
