"""Pure mapping: a directory user as the flat Learnster user it should be (Learnster's table).

A mapped user is *flat*: a dict from SCIM attribute path (the same path a PATCH operation
names) to a value. Flat form makes diffing and per-attribute PATCH operations direct.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from syncd.core.records import (
    USER_STRING_PROPERTIES,
    DirectoryUser,
    Problem,
    is_user_attribute,
    learnster_user_name,
)

ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

USER_NAME = "userName"
ACTIVE = "active"
DISPLAY_NAME = "displayName"
TITLE = "title"
EXTERNAL_ID = "externalId"
GIVEN_NAME = "name.givenName"
FAMILY_NAME = "name.familyName"
FORMATTED_NAME = "name.formatted"
WORK_EMAIL = 'emails[type eq "work"].value'
OFFICE = 'addresses[type eq "work"].formatted'
STREET = 'addresses[type eq "work"].streetAddress'
LOCALITY = 'addresses[type eq "work"].locality'
POSTAL_CODE = 'addresses[type eq "work"].postalCode'
COUNTRY = 'addresses[type eq "work"].country'
WORK_PHONE = 'phoneNumbers[type eq "work"].value'
MOBILE_PHONE = 'phoneNumbers[type eq "mobile"].value'
ORGANIZATION = f"{ENTERPRISE_SCHEMA}:organization"
MANAGER = f"{ENTERPRISE_SCHEMA}:manager"

# Learnster's documented table: SCIM path -> Graph property.
DEFAULT_USER_MAPPING: Mapping[str, str] = {
    USER_NAME: "userPrincipalName",
    DISPLAY_NAME: "displayName",
    TITLE: "jobTitle",
    WORK_EMAIL: "mail",
    GIVEN_NAME: "givenName",
    FAMILY_NAME: "surname",
    OFFICE: "officeLocation",
    STREET: "streetAddress",
    LOCALITY: "city",
    POSTAL_CODE: "postalCode",
    COUNTRY: "country",
    WORK_PHONE: "businessPhones",
    MOBILE_PHONE: "mobilePhone",
    EXTERNAL_ID: "mailNickname",
    ORGANIZATION: "companyName",
    MANAGER: "manager",
}
# SCIM attributes an override may fill that the default table does not send: the enterprise
# extension's (RFC 7643 §4.3), e.g. costCenter from an extension attribute.
OPTIONAL_PATHS: frozenset[str] = frozenset(
    f"{ENTERPRISE_SCHEMA}:{a}" for a in ("employeeNumber", "costCenter", "division", "department")
)
PHONE_PATHS = (WORK_PHONE, MOBILE_PHONE)  # work first: Learnster keeps only the first number
# Paths whose source is not a plain Graph property and so cannot be re-pointed.
_DERIVED_PATHS = frozenset({FORMATTED_NAME, MANAGER})
_UNDROPPABLE = frozenset({USER_NAME})
_MAPPABLE_PROPERTIES = frozenset({*USER_STRING_PROPERTIES, "businessPhones"})


def validate_overrides(overrides: Mapping[str, str]) -> None:
    """Raise ValueError naming the first override that cannot be honoured."""
    for path, prop in overrides.items():
        if (
            path not in DEFAULT_USER_MAPPING
            and path != FORMATTED_NAME
            and path not in OPTIONAL_PATHS
        ):
            raise ValueError(f"{path!r} is not a SCIM attribute syncd sends")
        if prop == "":
            if path in _UNDROPPABLE:
                raise ValueError(f"{path!r} is the matching attribute and cannot be dropped")
            continue
        if path in _DERIVED_PATHS:
            raise ValueError(f'{path!r} is derived and can only be dropped ("")')
        if prop not in _MAPPABLE_PROPERTIES and not is_user_attribute(prop):
            raise ValueError(
                f"{path!r} = {prop!r}: {prop!r} is not a Graph user property syncd can read"
            )


@dataclass(frozen=True)
class MappingOptions:
    """What a site can tune about the mapping."""

    phone_default_region: str = ""
    overrides: Mapping[str, str] = field(default_factory=dict)

    def table(self) -> dict[str, str]:
        table = dict(DEFAULT_USER_MAPPING)
        table[FORMATTED_NAME] = "(givenName surname)"
        table.update(self.overrides)
        return {path: prop for path, prop in table.items() if prop}


# Small on purpose: real numbers are mostly unique per person; what repeats is a switchboard
# number or a placeholder ("n/a", "-"). 65,536 entries held ~12 MB at 100,000 users.
@functools.lru_cache(maxsize=1024)
def normalise_phone(raw: str, region: str) -> str | None:
    """E.164 form of ``raw``, or None when it is not a valid number (national forms need region)."""
    import phonenumbers  # here: a cycle that maps nobody (nothing changed) skips its ~9 ms

    try:
        number = phonenumbers.parse(raw, region or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@functools.lru_cache(maxsize=1024)
def country_region(country: str) -> str:
    """ISO 3166 alpha-2 code for a Graph country value ("SE", "Sweden"), "" when unknown."""
    import phonenumbers

    text = country.strip()
    if len(text) == 2 and text.upper() in phonenumbers.SUPPORTED_REGIONS:
        return text.upper()
    import pycountry  # here: most directories set usageLocation, and the import costs ~16 ms

    countries = pycountry.countries
    found = (
        countries.get(name=text)
        or countries.get(common_name=text)
        or countries.get(official_name=text)
    )
    return str(found.alpha_2) if found is not None else ""


def phone_region(properties: Mapping[str, str], default_region: str) -> str:
    """The region a national-format number of a user (their Graph properties) belongs to.

    usageLocation (set for licensing) or the user's country beat the site default, so a
    New York office's "(212) 555-0186" is read as a US number even when the default is SE.
    """
    for value in (properties.get("usageLocation"), properties.get("country")):
        if value:
            region = country_region(value)
            if region:
                return region
    return default_region


def map_user(user: DirectoryUser, options: MappingOptions) -> tuple[dict[str, Any], list[Problem]]:
    """The flat desired Learnster user for ``user`` and the problems found on the way.

    ``active`` follows accountEnabled; the manager is the manager's *Graph* id (the cycle
    resolves it to a Learnster id when it sends). Empty values are left out, never null.
    """
    problems: list[Problem] = []
    table = options.table()
    flat: dict[str, Any] = {}
    properties = user.properties  # unpacked once: every get() would unpack again
    others = [
        p
        for path, p in table.items()
        if path not in _DERIVED_PATHS and p not in _MAPPABLE_PROPERTIES
    ]
    selected = user.values(others) if others else {}
    for path, prop in table.items():
        if path in (FORMATTED_NAME, MANAGER):
            continue
        if prop == "businessPhones":
            value = user.business_phones[0] if user.business_phones else ""
        elif prop == "userPrincipalName":
            value = learnster_user_name(properties.get(prop, ""))
        elif prop in selected:
            value = _as_text(selected[prop])
        else:
            value = properties.get(prop, "")
        if not value:
            continue
        if path in PHONE_PATHS:
            region = phone_region(properties, options.phone_default_region)
            normalised = normalise_phone(value, region)
            if normalised is None:
                problems.append(
                    Problem(
                        user.id,
                        prop,
                        f"phone number {value!r} is not valid E.164"
                        + (f" (read as a {region} number)" if region else " (no region known)")
                        + ": dropped",
                    )
                )
                continue
            value = normalised
        flat[path] = value
    if FORMATTED_NAME in table:
        formatted = " ".join(p for p in (flat.get(GIVEN_NAME), flat.get(FAMILY_NAME)) if p)
        if formatted:
            flat[FORMATTED_NAME] = formatted
    if MANAGER in table and user.manager_id:
        flat[MANAGER] = user.manager_id
    flat[ACTIVE] = user.account_enabled
    return flat, problems


def _as_text(value: Any) -> str:
    """A property beyond the string ones, as a SCIM string: booleans as Graph writes them,
    the first of a list; objects have no text (left out)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or isinstance(value, dict):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def selected_attributes(overrides: Mapping[str, str]) -> tuple[str, ...]:
    """The Graph user attributes the mapping reads beyond the ones every user is read with."""
    return tuple(sorted({p for p in overrides.values() if p and p not in _MAPPABLE_PROPERTIES}))


def learnster_keeps(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """What Learnster holds after accepting ``attrs``: only the first phone number survives
    (work before mobile), and a user is active unless told otherwise."""
    kept = dict(attrs)
    if WORK_PHONE in kept:
        kept.pop(MOBILE_PHONE, None)
    kept.setdefault(ACTIVE, True)
    return kept
