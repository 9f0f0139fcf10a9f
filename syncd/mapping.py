"""Pure mapping from directory records to Learnster SCIM resources (DESIGN §4) and back.

A mapped user is *flat*: a dict from SCIM attribute path (the same path a PATCH operation
names) to a value. Flat form makes diffing and per-attribute PATCH operations direct.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import phonenumbers

from syncd.model import USER_STRING_PROPERTIES, DirectoryUser, Problem

CORE_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

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
PHONE_PATHS = (WORK_PHONE, MOBILE_PHONE)  # work first: Learnster keeps only the first number
# Paths whose source is not a plain Graph property and so cannot be re-pointed.
_DERIVED_PATHS = frozenset({FORMATTED_NAME, MANAGER})
_UNDROPPABLE = frozenset({USER_NAME})
_MAPPABLE_PROPERTIES = frozenset({*USER_STRING_PROPERTIES, "businessPhones"})
_MULTI_VALUED = re.compile(r'^(?P<attr>\w+)\[type eq "(?P<type>\w+)"\]\.(?P<sub>\w+)$')


def validate_overrides(overrides: Mapping[str, str]) -> None:
    """Raise ValueError naming the first override that cannot be honoured."""
    for path, prop in overrides.items():
        if path not in DEFAULT_USER_MAPPING and path != FORMATTED_NAME:
            raise ValueError(f"{path!r} is not a SCIM attribute syncd sends")
        if prop == "":
            if path in _UNDROPPABLE:
                raise ValueError(f"{path!r} is the matching attribute and cannot be dropped")
            continue
        if path in _DERIVED_PATHS:
            raise ValueError(f'{path!r} is derived and can only be dropped ("")')
        if prop not in _MAPPABLE_PROPERTIES:
            raise ValueError(
                f"{path!r} = {prop!r}: {prop!r} is not a Graph user property syncd reads"
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

    ``active`` follows accountEnabled; the manager is the manager's *Graph* id (the engine
    resolves it to a Learnster id when it sends). Empty values are left out, never null.
    """
    problems: list[Problem] = []
    table = options.table()
    flat: dict[str, Any] = {}
    properties = user.properties  # unpacked once: every get() would unpack again
    for path, prop in table.items():
        if path in (FORMATTED_NAME, MANAGER):
            continue
        if prop == "businessPhones":
            value = user.business_phones[0] if user.business_phones else ""
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


def build_user_resource(flat: Mapping[str, Any], manager_scim_id: str | None) -> dict[str, Any]:
    """The POST /Users body for a flat user; the manager rides along when its id is known."""
    resource: dict[str, Any] = {"schemas": [CORE_USER_SCHEMA, ENTERPRISE_SCHEMA]}
    elements: dict[tuple[str, str], dict[str, Any]] = {}
    enterprise: dict[str, Any] = {}
    for path, value in _sorted_items(flat):
        if path == MANAGER:
            if manager_scim_id:
                enterprise["manager"] = {"value": manager_scim_id}
            continue
        if path.startswith(ENTERPRISE_SCHEMA + ":"):
            enterprise[path[len(ENTERPRISE_SCHEMA) + 1 :]] = value
            continue
        multi = _MULTI_VALUED.match(path)
        if multi:
            key = (multi["attr"], multi["type"])
            element = elements.setdefault(key, {"type": multi["type"]})
            element[multi["sub"]] = value
            continue
        if "." in path:
            parent, sub = path.split(".", 1)
            resource.setdefault(parent, {})[sub] = value
            continue
        resource[path] = value
    for (attr, _type), element in elements.items():
        resource.setdefault(attr, []).append(element)
    if enterprise:
        resource[ENTERPRISE_SCHEMA] = enterprise
    return resource


def flatten_user_resource(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The flat form of a SCIM user as Learnster holds it (for adoption and drift)."""
    flat: dict[str, Any] = {}
    for path in (USER_NAME, ACTIVE, DISPLAY_NAME, TITLE, EXTERNAL_ID):
        value = resource.get(path)
        if value not in (None, ""):
            flat[path] = value
    name = resource.get("name")
    if isinstance(name, Mapping):
        for sub, path in (
            ("givenName", GIVEN_NAME),
            ("familyName", FAMILY_NAME),
            ("formatted", FORMATTED_NAME),
        ):
            if name.get(sub):
                flat[path] = name[sub]
    for attr in ("emails", "addresses", "phoneNumbers"):
        elements = resource.get(attr)
        if not isinstance(elements, list):
            continue
        for element in elements:
            if not isinstance(element, Mapping) or not isinstance(element.get("type"), str):
                continue
            for sub, value in element.items():
                if sub in ("type", "primary") or value in (None, ""):
                    continue
                flat.setdefault(f'{attr}[type eq "{element["type"]}"].{sub}', value)
    enterprise = resource.get(ENTERPRISE_SCHEMA)
    if isinstance(enterprise, Mapping):
        if enterprise.get("organization"):
            flat[ORGANIZATION] = enterprise["organization"]
        manager = enterprise.get("manager")
        if isinstance(manager, Mapping) and manager.get("value"):
            flat[MANAGER] = manager["value"]
    return flat


def user_patch_operations(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    resolve_manager: Callable[[str], str | None],
    *,
    remove_missing: bool = True,
) -> list[dict[str, Any]]:
    """RFC 7644 §3.5.2 operations turning ``old`` into ``new``, one per changed attribute.

    Multi-valued attributes use filtered paths; an element the target lacks is added whole.
    ``remove_missing=False`` (adoption) leaves attributes Graph has no value for untouched.
    ``resolve_manager`` maps the manager's Graph id to its Learnster id (None: not there yet).
    """
    ops: list[dict[str, Any]] = _phone_operations(old, new, remove_missing=remove_missing)
    elements_old = _group_elements(old)
    elements_new = _group_elements(new)
    for key in sorted(set(elements_old) | set(elements_new)):
        attr, type_ = key
        if attr == "phoneNumbers":
            continue
        before, after = elements_old.get(key, {}), elements_new.get(key, {})
        if not before and after:
            ops.append({"op": "add", "path": attr, "value": [{"type": type_, **after}]})
            continue
        if before and not after:
            if remove_missing:
                ops.append({"op": "remove", "path": f'{attr}[type eq "{type_}"]'})
            continue
        for sub in sorted(set(before) | set(after)):
            path = f'{attr}[type eq "{type_}"].{sub}'
            if sub not in after:
                if remove_missing:
                    ops.append({"op": "remove", "path": path})
            elif sub not in before:
                ops.append({"op": "add", "path": path, "value": after[sub]})
            elif before[sub] != after[sub]:
                ops.append({"op": "replace", "path": path, "value": after[sub]})
    for path in _scalar_paths(old, new):
        if path == MANAGER:
            ops.extend(_manager_ops(old.get(MANAGER), new.get(MANAGER), resolve_manager))
            continue
        if path not in new:
            if remove_missing and path != ACTIVE:
                ops.append({"op": "remove", "path": path})
        elif path not in old and path != ACTIVE:
            ops.append({"op": "add", "path": path, "value": new[path]})
        elif old.get(path) != new[path]:
            ops.append({"op": "replace", "path": path, "value": new[path]})
    return ops


def _phone_list(flat: Mapping[str, Any]) -> list[dict[str, str]]:
    return [
        {"type": path.split('"')[1], "value": flat[path]} for path in PHONE_PATHS if path in flat
    ]


def _phone_operations(
    old: Mapping[str, Any], new: Mapping[str, Any], *, remove_missing: bool
) -> list[dict[str, Any]]:
    """Phone numbers, with Learnster's "only the first number is kept" in mind.

    The first number sent is the one Learnster keeps, so work always precedes mobile, and
    whenever *which* number comes first changes the whole list is replaced in order.
    """
    before, after = _phone_list(old), _phone_list(new)
    if before == after:
        return []
    if not after:
        if not remove_missing:
            return []
        return [{"op": "remove", "path": f'phoneNumbers[type eq "{p["type"]}"]'} for p in before]
    if not before:
        return [{"op": "add", "path": "phoneNumbers", "value": after}]
    if before[0]["type"] != after[0]["type"]:
        if not remove_missing:  # adoption: keep what Learnster holds, put ours first
            kept = [p for p in before if p["type"] not in {q["type"] for q in after}]
            after = after + kept
        return [{"op": "replace", "path": "phoneNumbers", "value": after}]
    ops: list[dict[str, Any]] = []
    old_by_type = {p["type"]: p["value"] for p in before}
    new_by_type = {p["type"]: p["value"] for p in after}
    for type_ in ("work", "mobile"):
        was, now = old_by_type.get(type_), new_by_type.get(type_)
        if was == now:
            continue
        if now is None:
            if remove_missing:
                ops.append({"op": "remove", "path": f'phoneNumbers[type eq "{type_}"]'})
        elif was is None:
            ops.append(
                {"op": "add", "path": "phoneNumbers", "value": [{"type": type_, "value": now}]}
            )
        else:
            ops.append(
                {"op": "replace", "path": f'phoneNumbers[type eq "{type_}"].value', "value": now}
            )
    return ops


def _manager_ops(
    before: str | None, after: str | None, resolve_manager: Callable[[str], str | None]
) -> list[dict[str, Any]]:
    if after == before:
        return []
    if after is None:
        return [{"op": "remove", "path": MANAGER}]
    scim_id = resolve_manager(after)
    if scim_id is None:
        return []
    return [{"op": "replace", "path": MANAGER, "value": {"value": scim_id}}]


def _scalar_paths(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = {k for k in (*old, *new) if not _MULTI_VALUED.match(k)}
    order = {path: i for i, path in enumerate((USER_NAME, ACTIVE, *DEFAULT_USER_MAPPING))}
    return sorted(keys, key=lambda k: (order.get(k, len(order)), k))


def _group_elements(flat: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    elements: dict[tuple[str, str], dict[str, Any]] = {}
    for path, value in flat.items():
        match = _MULTI_VALUED.match(path)
        if match:
            elements.setdefault((match["attr"], match["type"]), {})[match["sub"]] = value
    return elements


def _sorted_items(flat: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    # Work phone before mobile so Learnster's "first number wins" keeps the work number.
    phones = [(p, flat[p]) for p in PHONE_PATHS if p in flat]
    others = [(p, v) for p, v in flat.items() if p not in PHONE_PATHS]
    return [*others, *phones]


def group_resource(
    display_name: str, external_id: str, member_ids: Iterable[str] = ()
) -> dict[str, Any]:
    """The POST /Groups body: a Learnster tag named after the group, keyed by its object id.

    ``member_ids``: Learnster user ids of the few members that ride in the POST.
    """
    resource: dict[str, Any] = {
        "schemas": [GROUP_SCHEMA],
        "displayName": display_name,
        "externalId": external_id,
    }
    members = _member_values(member_ids)
    if members:
        resource["members"] = members
    return resource


def add_members_operation(member_ids: Iterable[str]) -> dict[str, Any]:
    """The PATCH operation that adds these Learnster users to a tag."""
    return {"op": "add", "path": "members", "value": _member_values(member_ids)}


def _member_values(member_ids: Iterable[str]) -> list[dict[str, str]]:
    return [{"value": member} for member in member_ids]
