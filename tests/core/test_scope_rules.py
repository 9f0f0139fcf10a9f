"""Who is in scope (DESIGN.md §3, §6): the modes, nested scope groups, the attribute scoping
filters after the mode, which groups become tags, and why a user is out."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import Any

import pytest

from syncd.core.filters import parse_filters
from syncd.core.records import (
    DirectoryGroup,
    DirectoryUser,
    Entry,
    GroupSnapshot,
    Presence,
    UserSnapshot,
    is_user_attribute,
)
from syncd.core.scope import (
    ScopeRules,
    compute_scope,
    resolve_scope_groups,
    scope_group_members,
    tags,
)

PRESENT, RECYCLED, DELETED = Presence.PRESENT, Presence.RECYCLED, Presence.DELETED


def users(*specs: tuple[str, dict[str, Any], Presence]) -> UserSnapshot:
    return {
        uid: Entry(DirectoryUser(uid, {"userPrincipalName": f"{uid}@x.example", **props}), presence)
        for uid, props, presence in specs
    }


def group(
    gid: str,
    name: str,
    members: AbstractSet[str] = frozenset(),
    nested: AbstractSet[str] = frozenset(),
    presence: Presence = PRESENT,
) -> tuple[str, Entry[DirectoryGroup]]:
    return gid, Entry(DirectoryGroup(gid, name, frozenset(members), frozenset(nested)), presence)


USERS = users(
    ("a", {"department": "Sales"}, PRESENT),
    ("b", {"department": "Ops"}, PRESENT),
    ("c", {"department": "Sales"}, PRESENT),
    ("d", {}, PRESENT),
    ("gone", {"department": "Sales"}, RECYCLED),
)
GROUPS: GroupSnapshot = dict(
    [
        group("top", "Top", {"a"}, {"sub", "self", "missing"}),
        group("sub", "Sub", {"b"}, {"subsub"}),
        group("subsub", "SubSub", {"c"}),
        group("self", "Self", set(), {"self"}),
        group("other", "Other", {"d", "gone"}),
        group("old", "Old", {"d"}, presence=DELETED),
        group("twin1", "Twin"),
        group("twin2", "twin"),
    ]
)
SALES = parse_filters(
    [{"clauses": [{"attribute": "department", "operator": "EQUALS", "value": "sales"}]}],
    is_user_attribute,
)


def test_scope_group_members_direct_or_nested() -> None:
    assert scope_group_members(GROUPS, {"top"}, nested=False) == {"a"}
    assert scope_group_members(GROUPS, {"top"}, nested=True) == {"a", "b", "c"}
    assert scope_group_members(GROUPS, {"self", "old", "missing"}, nested=True) == set()
    assert scope_group_members(GROUPS, {"sub", "other"}, nested=False) == {"b", "d", "gone"}


@pytest.mark.parametrize(
    ("rules", "in_scope"),
    [
        (ScopeRules(), {"a", "b", "c", "d"}),
        (ScopeRules(filters=SALES), {"a", "c"}),
        (ScopeRules(mode="groups", scope_groups=frozenset({"top"})), {"a"}),
        (ScopeRules(mode="groups", scope_groups=frozenset({"top"}), nested=True), {"a", "b", "c"}),
        (ScopeRules(mode="groups", scope_groups=frozenset({"other"})), {"d"}),
        (
            ScopeRules(mode="groups", scope_groups=frozenset({"top"}), nested=True, filters=SALES),
            {"a", "c"},
        ),
        (ScopeRules(mode="assigned", assigned_users=frozenset({"b", "gone"})), {"b"}),
        (
            ScopeRules(
                mode="assigned", scope_groups=frozenset({"sub"}), assigned_users=frozenset({"d"})
            ),
            {"b", "d"},
        ),
    ],
)
def test_compute_scope_users(rules: ScopeRules, in_scope: set[str]) -> None:
    assert compute_scope(USERS, GROUPS, rules).users == in_scope


@pytest.mark.parametrize(
    ("sync_groups", "expected"),
    [
        ("all", {"top", "sub", "subsub", "self", "other", "twin1", "twin2"}),
        ("scope", {"top"}),
        ("with_members", {"top", "sub"}),
        ("none", set()),
    ],
)
def test_which_groups_become_tags(sync_groups: str, expected: set[str]) -> None:
    rules = ScopeRules(
        mode="groups", scope_groups=frozenset({"top", "old"}), sync_groups=sync_groups
    )
    present = {gid for gid, e in GROUPS.items() if e.present}
    assert tags(GROUPS, present, {"a", "b"}, rules) == expected


def test_compute_scope_tags_the_groups_of_the_users_in_scope() -> None:
    rules = ScopeRules(
        mode="groups",
        scope_groups=frozenset({"top"}),
        nested=True,
        sync_groups="with_members",
        filters=SALES,
    )
    scope = compute_scope(USERS, GROUPS, rules)
    assert scope.users == {"a", "c"}
    assert scope.groups == {"top", "subsub"}


def test_resolve_scope_groups_by_id_or_exact_name_ignoring_case() -> None:
    assert resolve_scope_groups(("top", "SUB", "Other"), GROUPS) == ({"top", "sub", "other"}, [])
    assert resolve_scope_groups(("old", "Old", "nowhere", "twin"), GROUPS) == (
        set(),
        [
            "scope group 'old' not found in the directory",
            "scope group 'Old' not found in the directory",
            "scope group 'nowhere' not found in the directory",
            "scope group 'twin' matches 2 groups; use its object id",
        ],
    )


def test_passes_filters() -> None:
    rules = ScopeRules(filters=SALES)
    assert rules.attributes == ("department",)
    assert rules.passes_filters(USERS["a"].record)
    assert not rules.passes_filters(USERS["b"].record)
    assert ScopeRules().passes_filters(USERS["b"].record)
    assert ScopeRules().attributes == ()


def test_why_a_user_is_out_of_scope() -> None:
    assigned = ScopeRules(mode="assigned", assigned_users=frozenset({"a", "b"}), filters=SALES)
    assert assigned.why_out("c", USERS, GROUPS) == (
        "is not assigned to the Learnster app, neither directly nor by a group"
    )
    assert assigned.why_out("b", USERS, GROUPS) == (
        "matches no [[scope.filter]]: [[scope.filter]] 1: department EQUALS 'sales' does not hold "
        "(department is 'Ops')"
    )
    grouped = ScopeRules(mode="groups", scope_groups=frozenset({"top"}), nested=True, filters=SALES)
    assert grouped.why_out("d", USERS, GROUPS) == "is not a member of any [scope] group"
    assert grouped.why_out("b", USERS, GROUPS).startswith("matches no [[scope.filter]]: ")
    everyone = ScopeRules(filters=SALES)
    assert everyone.why_out("d", USERS, GROUPS) == (
        "matches no [[scope.filter]]: [[scope.filter]] 1: department EQUALS 'sales' does not hold "
        "(department is null)"
    )


def test_a_scope_group_that_is_not_there_does_not_hide_the_others() -> None:
    # Sets have no order: which group is looked at first varies from run to run, so 30 pairs
    # of a missing (or deleted) group and one that is there make "first" certain for some.
    groups: GroupSnapshot = {}
    for i in range(30):
        groups.update(
            [
                group(f"there-{i}", f"There {i}", {f"u{i}"}),
                group(f"old-{i}", "Old", {"x"}, presence=DELETED),
            ]
        )
    for i in range(30):
        for other in (f"missing-{i}", f"old-{i}"):
            assert scope_group_members(groups, {other, f"there-{i}"}, nested=False) == {f"u{i}"}
