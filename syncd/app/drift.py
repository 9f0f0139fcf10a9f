"""Drift: differences made directly in Learnster to what syncd last sent (``status --drift``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syncd.core.ledger import LedgerGroup, LedgerUser
from syncd.core.mapping import MANAGER, learnster_keeps
from syncd.core.messages import flatten_user_resource
from syncd.ports import ScimTarget


@dataclass(frozen=True)
class Drift:
    """One attribute that Learnster holds differently from what syncd sent."""

    object_id: str  # Graph object id
    kind: str  # user | group
    path: str
    sent: Any
    found: Any


def compare_user(
    graph_id: str,
    sent: Mapping[str, Any],
    resource: Mapping[str, Any] | None,
    graph_id_of: Mapping[str, str],
) -> list[Drift]:
    """Differences for one linked user (pure)."""
    if resource is None:
        return [Drift(graph_id, "user", "(user)", "present", "deleted in Learnster")]
    found = flatten_user_resource(resource)
    if MANAGER in found:
        found[MANAGER] = graph_id_of.get(found[MANAGER], found[MANAGER])
    expected = learnster_keeps(sent)
    drifts = []
    for path in sorted(set(expected) | set(found)):
        if path not in expected:
            continue  # Learnster's own attributes and ones Graph had no value for: not ours
        if expected.get(path) != found.get(path):
            drifts.append(Drift(graph_id, "user", path, expected.get(path), found.get(path)))
    return drifts


def compare_group(
    graph_id: str,
    sent: LedgerGroup,
    resource: Mapping[str, Any] | None,
    graph_id_of: Mapping[str, str],
) -> list[Drift]:
    if resource is None:
        return [Drift(graph_id, "group", "(group)", "present", "deleted in Learnster")]
    drifts = []
    name = resource.get("displayName")
    # Learnster suffixes clashing tag names ("Sales (2)"): that is not a change made by hand.
    if not (isinstance(name, str) and name.startswith(sent.display_name)):
        drifts.append(Drift(graph_id, "group", "displayName", sent.display_name, name))
    members = {
        graph_id_of.get(str(m["value"]), str(m["value"]))
        for m in resource.get("members") or []
        if isinstance(m, Mapping) and m.get("value")
    }
    if members != set(sent.members):
        missing = sorted(set(sent.members) - members)
        extra = sorted(str(m) for m in members - set(sent.members))
        drifts.append(Drift(graph_id, "group", "members", missing or None, extra or None))
    return drifts


async def find_drift(
    sink: ScimTarget, users: Mapping[str, LedgerUser], groups: Mapping[str, LedgerGroup]
) -> list[Drift]:
    """Read Learnster's users and groups once (paged) and compare the linked ones."""
    graph_id_of = {u.scim_id: gid for gid, u in users.items()}
    user_resources: dict[str, dict[str, Any]] = {}
    async for resource in sink.iter_users():
        user_resources[resource["id"]] = resource
    group_resources: dict[str, dict[str, Any]] = {}
    async for resource in sink.iter_groups(attributes=""):
        group_resources[resource["id"]] = resource
    drifts: list[Drift] = []
    for gid, linked in users.items():
        drifts += compare_user(gid, linked.attrs, user_resources.get(linked.scim_id), graph_id_of)
    for gid, group in groups.items():
        drifts += compare_group(gid, group, group_resources.get(group.scim_id), graph_id_of)
    return drifts
