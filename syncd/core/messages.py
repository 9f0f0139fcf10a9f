"""SCIM request bodies (RFC 7644) built from flat users, and the flat form of a SCIM user.

What a request says lives here; sending it is the SCIM adapter's job.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from syncd.core.mapping import (
    ACTIVE,
    DEFAULT_USER_MAPPING,
    DISPLAY_NAME,
    ENTERPRISE_SCHEMA,
    EXTERNAL_ID,
    FAMILY_NAME,
    FORMATTED_NAME,
    GIVEN_NAME,
    MANAGER,
    ORGANIZATION,
    PHONE_PATHS,
    TITLE,
    USER_NAME,
)
from syncd.core.records import user_name_key

CORE_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
_MULTI_VALUED = re.compile(r'^(?P<attr>\w+)\[type eq "(?P<type>\w+)"\]\.(?P<sub>\w+)$')


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


def remove_member_operation(member_id: str) -> dict[str, Any]:
    """The PATCH operation that removes one Learnster user from a tag (a filtered path)."""
    return {"op": "remove", "path": f'members[value eq "{member_id}"]'}


def rename_operation(display_name: str) -> dict[str, Any]:
    """The PATCH operation that renames a tag."""
    return {"op": "replace", "path": "displayName", "value": display_name}


def work_email_key(resource: Mapping[str, Any]) -> str | None:
    """A SCIM user's work e-mail as matching compares it (case-insensitively), if it has one."""
    for element in resource.get("emails") or ():
        if isinstance(element, Mapping) and element.get("type") == "work":
            value = element.get("value")
            if isinstance(value, str) and value:
                return user_name_key(value)
    return None


def member_patches(
    add_ids: list[str], remove_ids: list[str], batch_size: int
) -> list[list[dict[str, Any]]]:
    """The PATCH bodies' operations that add and remove these Learnster users of a tag, at most
    ``batch_size`` members per request."""
    patches: list[list[dict[str, Any]]] = [
        [add_members_operation(add_ids[i : i + batch_size])]
        for i in range(0, len(add_ids), batch_size)
    ]
    patches += [
        [remove_member_operation(m) for m in remove_ids[i : i + batch_size]]
        for i in range(0, len(remove_ids), batch_size)
    ]
    return patches


def is_same_tag_name(held: str, sent: str) -> bool:
    """Whether Learnster's tag name is the one sent: it adds " (2)" and so on to a name that
    clashes with another tag's, which is not a change to undo."""
    return held == sent or re.fullmatch(re.escape(sent) + r" \(\d+\)", held) is not None
