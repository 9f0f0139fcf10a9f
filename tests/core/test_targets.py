"""Desired state from the snapshot (DESIGN.md §4, §6): who is mapped, soft-deleted or deleted,
which managers survive the scope, what the tags list, and duplicate UPNs."""

from __future__ import annotations

from typing import Any

from syncd.core.ledger import LedgerUser
from syncd.core.mapping import ACTIVE, MANAGER, TITLE, MappingOptions
from syncd.core.records import DirectoryGroup, DirectoryUser, Entry, Presence, Problem
from syncd.core.scope import Scope
from syncd.core.targets import GroupTarget, UserTarget, build_targets, members_within

PRESENT, RECYCLED, DELETED = Presence.PRESENT, Presence.RECYCLED, Presence.DELETED


def entry(uid: str, presence: Presence = PRESENT, **kwargs: Any) -> Entry[DirectoryUser]:
    upn = kwargs.pop("upn", f"{uid}@x.example")
    return Entry(
        DirectoryUser(uid, {"userPrincipalName": upn, **kwargs.pop("props", {})}, **kwargs),
        presence,
    )


def flat(uid: str, **extra: Any) -> dict[str, Any]:
    return {"userName": f"{uid}@x.example", ACTIVE: True, **extra}


def test_members_within_shares_the_members_when_none_is_left_out() -> None:
    members = frozenset({"a", "b"})
    assert members_within(members, {"a", "b", "c"}) is members
    assert members_within(members, frozenset({"a", "b"})) is members
    assert members_within(members, {"a"}) == frozenset({"a"})


def test_each_kind_of_user_gets_its_target() -> None:
    users = {
        "in": entry("in", props={"jobTitle": "T"}),
        "out": entry("out"),  # present, out of scope, linked: soft delete
        "never": entry("never"),  # present, out of scope, never linked: nothing
        "bin": entry("bin", RECYCLED),  # in the recycle bin, linked: soft delete
        "bin-new": entry("bin-new", RECYCLED),  # recycled and never linked: nothing
        "gone": entry("gone", DELETED),  # permanently deleted
        "after": entry("after", props={"jobTitle": "A"}),  # after the deleted one
    }
    ledger = {uid: LedgerUser(f"s-{uid}", flat(uid, title="Old")) for uid in ("out", "bin")}
    scope = Scope(users={"in", "bin", "bin-new", "gone", "after"})
    targets, groups, problems = build_targets(users, {}, scope, ledger, MappingOptions())
    assert targets == {
        "in": UserTarget(flat("in", title="T")),
        "out": UserTarget(flat("out", title="Old", active=False)),
        "bin": UserTarget(flat("bin", title="Old", active=False)),
        "gone": UserTarget({}, hard_deleted=True),
        "after": UserTarget(flat("after", title="A")),
    }
    assert groups == {}
    assert problems == []


def test_a_manager_outside_the_scope_is_left_out() -> None:
    users = {
        "a": entry("a", manager_id="m"),
        "b": entry("b", manager_id="c"),
        "c": entry("c"),
        "m": entry("m"),
    }
    targets, _, _ = build_targets(users, {}, Scope(users={"a", "b", "c"}), {}, MappingOptions())
    assert targets["a"] == UserTarget(flat("a"))
    assert targets["b"] == UserTarget(flat("b", **{MANAGER: "c"}))


def test_problems_are_reported_for_the_users_asked_about() -> None:
    users = {uid: entry(uid, business_phones=("n/a",)) for uid in ("a", "b")}
    scope = Scope(users={"a", "b"})
    _, _, problems = build_targets(users, {}, scope, {}, MappingOptions(), report_for={"b"})
    assert [p.object_id for p in problems] == ["b"]
    _, _, problems = build_targets(users, {}, scope, {}, MappingOptions())
    assert [p.object_id for p in problems] == ["a", "b"]


def test_consume_empties_the_snapshot_as_it_maps() -> None:
    users = {"a": entry("a"), "b": entry("b", DELETED)}
    kept = dict(users)
    targets, _, _ = build_targets(users, {}, Scope(users={"a"}), {}, MappingOptions(), consume=True)
    assert users == {}
    assert set(targets) == {"a", "b"}
    targets_again, _, _ = build_targets(kept, {}, Scope(users={"a"}), {}, MappingOptions())
    assert targets_again == targets
    assert set(kept) == {"a", "b"}


def test_tags_list_the_members_that_have_a_target() -> None:
    users = {
        "a": entry("a"),
        "gone": entry("gone", DELETED),
        "out": entry("out"),
        "linked-out": entry("linked-out"),
    }
    groups = {
        "g": Entry(DirectoryGroup("g", "Sales", frozenset(users) | {"stranger"}), PRESENT),
        "h": Entry(DirectoryGroup("h", "Ops", frozenset({"a"})), PRESENT),
    }
    ledger = {"linked-out": LedgerUser("s", flat("linked-out"))}
    scope = Scope(users={"a"}, groups={"g"})
    _, tags, _ = build_targets(users, groups, scope, ledger, MappingOptions())
    # The deactivated user keeps the tags Graph still lists for them (DESIGN.md §4).
    assert tags == {"g": GroupTarget("Sales", frozenset({"a", "linked-out"}))}
    _, tags, _ = build_targets(
        users, groups, scope, ledger, MappingOptions(), member_candidates={"a", "stranger"}
    )
    assert tags == {"g": GroupTarget("Sales", frozenset({"a", "stranger"}))}


def test_duplicate_upns_outside_the_scope_do_not_count() -> None:
    users = {"a": entry("a", upn="same@x.example"), "b": entry("b", upn="SAME@x.example")}
    targets, _, problems = build_targets(users, {}, Scope(users={"a"}), {}, MappingOptions())
    assert list(targets) == ["a"]
    assert problems == []


def test_a_duplicate_upn_is_skipped_with_an_error_naming_the_keeper() -> None:
    users = {
        "b": entry("b", upn="same@x.example", props={"jobTitle": "B"}),
        "a": entry("a", upn="Same@x.example"),
        "gone": entry("gone", DELETED, upn="same@x.example"),  # not present: no clash
    }
    scope = Scope(users={"a", "b", "gone"})
    targets, _, problems = build_targets(users, {}, scope, {}, MappingOptions())
    assert set(targets) == {"a", "gone"}
    assert problems == [
        Problem(
            "b",
            "userPrincipalName",
            "'same@x.example' is also the UPN of a: user skipped",
            "error",
        )
    ]
    # The one already linked keeps it.
    ledger = {"b": LedgerUser("s-b", flat("b", title="B"))}
    targets, _, _ = build_targets(users, {}, scope, ledger, MappingOptions())
    assert targets["b"] == UserTarget({"userName": "same@x.example", TITLE: "B", ACTIVE: True})
    assert "a" not in targets
