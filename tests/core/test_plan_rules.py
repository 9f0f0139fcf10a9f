"""The planner's rules one case at a time: the deletion guard at its boundaries, manager
references to users Learnster will not hold, the waves of creates, partial reads and tags."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.core.ledger import LedgerGroup, LedgerUser
from syncd.core.mapping import ACTIVE, MANAGER, TITLE, USER_NAME
from syncd.core.operations import (
    AddMembers,
    CreateGroup,
    CreateUser,
    DeleteGroup,
    DeleteUser,
    RemoveMembers,
    RenameGroup,
    UpdateUser,
)
from syncd.core.planner import PlanOptions, guard_trips, plan
from syncd.core.targets import GroupTarget, UserTarget


def attrs(name: str, *, active: bool = True, **extra: Any) -> dict[str, Any]:
    return {USER_NAME: f"{name}@x.example", ACTIVE: active, **extra}


def target(name: str, **kwargs: Any) -> UserTarget:
    return UserTarget(attrs(name, **kwargs))


def linked(name: str, **kwargs: Any) -> LedgerUser:
    return LedgerUser(f"scim-{name}", attrs(name, **kwargs))


# -- the deletion guard ---------------------------------------------------------------------

# (removals, linked, max_deletions, max_deletion_percent, trips). max_deletions: "more than"
# trips (DESIGN.md §6); the percent rule: at least 5 removals that reach the share (README).
GUARD_BOUNDARIES = [
    # the absolute rule alone (percent rule off)
    pytest.param(2, 100, 3, 0, False, id="max 3: 2 below"),
    pytest.param(3, 100, 3, 0, False, id="max 3: 3 at, holds nothing"),
    pytest.param(4, 100, 3, 0, True, id="max 3: 4 above"),
    pytest.param(1, 1, 1, 0, False, id="max 1: 1 at"),
    pytest.param(2, 2, 1, 0, True, id="max 1: 2 above"),
    pytest.param(1000, 1000, 0, 0, False, id="max 0: off"),
    pytest.param(0, 0, 3, 0, False, id="max 3: nothing linked"),
    # the percent rule alone (max_deletions off)
    pytest.param(5, 11, 0, 50, False, id="50 %: 5 of 11 below"),
    pytest.param(5, 10, 0, 50, True, id="50 %: 5 of 10 at"),
    pytest.param(6, 10, 0, 50, True, id="50 %: 6 of 10 above"),
    pytest.param(99, 101, 0, 99, False, id="99 %: 99 of 101 below"),
    pytest.param(99, 100, 0, 99, True, id="99 %: 99 of 100 at"),
    pytest.param(5, 501, 0, 1, False, id="1 %: 5 of 501 below"),
    pytest.param(5, 500, 0, 1, True, id="1 %: 5 of 500 at"),
    pytest.param(4, 4, 0, 50, False, id="50 %: 4 of 4, below the 5 removals"),
    pytest.param(5, 5, 0, 50, True, id="50 %: 5 of 5, at the 5 removals"),
    pytest.param(4, 400, 0, 1, False, id="1 %: 4 of 400 at the share, below 5 removals"),
    pytest.param(0, 0, 0, 50, False, id="50 %: nothing linked, nothing removed"),
    pytest.param(5, 0, 0, 50, True, id="50 %: 5 removed, nothing linked"),
    pytest.param(10, 10, 0, 0, False, id="0 %: off"),
    pytest.param(10, 10, 0, 100, True, id="100 %: all at"),
    pytest.param(9, 10, 0, 100, False, id="100 %: 9 of 10 below"),
    # both rules: either trips
    pytest.param(4, 100, 3, 50, True, id="both: the absolute one trips"),
    pytest.param(5, 10, 500, 50, True, id="both: the percent one trips"),
    pytest.param(3, 10, 3, 50, False, id="both: neither, each at or below"),
]


@pytest.mark.parametrize(("removals", "linked", "maximum", "percent", "trips"), GUARD_BOUNDARIES)
def test_guard_boundaries(
    removals: int, linked: int, maximum: int, percent: int, trips: bool
) -> None:
    options = PlanOptions(max_deletions=maximum, max_deletion_percent=percent)
    assert guard_trips(removals, linked, options) is trips


def test_guard_counts_groups_in_what_is_linked() -> None:
    # 5 users leave; 6 users and 5 tags are linked: 5 of 11 is below 50 %.
    users = {f"u{i}": linked(f"u{i}") for i in range(6)}
    groups = {f"g{i}": LedgerGroup(f"sg{i}", f"G{i}") for i in range(5)}
    tags = {g: GroupTarget(lg.display_name) for g, lg in groups.items()}
    options = PlanOptions(max_deletions=0, max_deletion_percent=50)
    result = plan({"u0": target("u0")}, users, tags, groups, options)
    assert result.held == ()
    assert len(result.operations) == 5
    # One tag fewer: 5 of 10 reaches it, and every removal is held.
    del groups["g4"], tags["g4"]
    result = plan({"u0": target("u0")}, users, tags, groups, options)
    assert len(result.held) == 5
    assert result.phases == ()


def test_guard_counts_what_learnster_holds_when_the_ledger_is_a_slice() -> None:
    # Incremental planning: 5 removals in a slice of 5, of 20 users Learnster holds (25 %).
    users = {f"u{i}": linked(f"u{i}") for i in range(5)}
    options = PlanOptions(max_deletions=0, max_deletion_percent=50)
    result = plan({}, users, {}, {}, options, linked_users=set(users), linked_count=20)
    assert result.held == ()
    assert len(result.operations) == 5
    result = plan({}, users, {}, {}, options, linked_users=set(users), linked_count=10)
    assert len(result.held) == 5


def test_guard_counts_deletions_and_tag_deletions_but_not_member_removals() -> None:
    users = {f"u{i}": linked(f"u{i}") for i in range(3)}
    groups = {
        "g": LedgerGroup("sg", "G", frozenset(users)),
        "gone": LedgerGroup("sgone", "Gone"),
    }
    targets = {"u0": UserTarget({}, hard_deleted=True), "u1": target("u1"), "u2": target("u2")}
    tags = {"g": GroupTarget("G", frozenset({"u1"}))}  # u2 leaves the tag: not a removal
    options = PlanOptions(max_deletions=1, max_deletion_percent=0)
    result = plan(targets, users, tags, groups, options)
    assert set(result.held) == {DeleteUser("u0"), DeleteGroup("gone")}
    assert result.operations == [RemoveMembers("g", ("u2",))]


# -- manager references ---------------------------------------------------------------------


def test_a_create_drops_a_manager_learnster_will_not_hold() -> None:
    # "n" is disabled and never synced: it is not created, so "a" is created without it.
    result = plan({"a": target("a", **{MANAGER: "n"}), "n": target("n", active=False)}, {}, {}, {})
    assert result.operations == [CreateUser("a", attrs("a"))]


def test_a_create_keeps_a_manager_learnster_holds_outside_the_ledger_slice() -> None:
    result = plan({"a": target("a", **{MANAGER: "m"})}, {}, {}, {}, linked_users={"m"})
    assert result.operations == [CreateUser("a", attrs("a", **{MANAGER: "m"}))]
    # Without linked_users the ledger is all Learnster holds, and it holds no "m".
    assert plan({"a": target("a", **{MANAGER: "m"})}, {}, {}, {}).operations == [
        CreateUser("a", attrs("a"))
    ]


def test_an_update_removes_a_manager_reference_to_a_user_learnster_will_not_hold() -> None:
    ledger = {"a": linked("a", **{MANAGER: "m"}), "m": linked("m")}
    targets = {"a": target("a", **{MANAGER: "n"}), "m": target("m"), "n": target("n", active=False)}
    result = plan(targets, ledger, {}, {})
    assert result.operations == [UpdateUser("a", attrs("a", **{MANAGER: "m"}), attrs("a"))]


def test_an_update_gets_no_manager_change_when_neither_manager_is_in_learnster() -> None:
    # "m" is deleted this cycle and the new manager "n" is not created: Learnster drops the
    # reference to "m" itself, as it does a deleted user's tags, so only the title is sent.
    ledger = {"a": linked("a", **{MANAGER: "m"}), "m": linked("m")}
    targets = {
        "a": target("a", title="New", **{MANAGER: "n"}),
        "m": UserTarget({}, hard_deleted=True),
        "n": target("n", active=False),
    }
    result = plan(targets, ledger, {}, {})
    before = attrs("a", **{MANAGER: "m"})
    assert result.operations == [
        UpdateUser("a", before, {**before, TITLE: "New"}),
        DeleteUser("m"),
    ]


def test_an_update_that_only_names_a_missing_manager_is_dropped() -> None:
    ledger = {"a": linked("a")}
    targets = {"a": target("a", **{MANAGER: "n"}), "n": target("n", active=False)}
    assert len(plan(targets, ledger, {}, {})) == 0
    # With another change, the update carries that change alone.
    targets["a"] = target("a", title="T", **{MANAGER: "n"})
    assert plan(targets, ledger, {}, {}).operations == [
        UpdateUser("a", attrs("a"), attrs("a", title="T"))
    ]


def test_a_deactivation_after_a_deletion_has_its_manager_reference_repaired_too() -> None:
    # The removals phase holds the deletion first; the deactivation after it is repaired all
    # the same: its new manager "n" is never created, so the reference to "m" is removed.
    ledger = {"x": linked("x"), "y": linked("y", **{MANAGER: "m"}), "m": linked("m")}
    targets = {
        "x": UserTarget({}, hard_deleted=True),
        "y": target("y", active=False, **{MANAGER: "n"}),
        "n": target("n", active=False),
        "m": target("m"),
    }
    result = plan(targets, ledger, {}, {})
    assert result.operations == [
        DeleteUser("x"),
        UpdateUser("y", attrs("y", **{MANAGER: "m"}), attrs("y", active=False)),
    ]


def test_a_deleted_user_is_no_manager_in_learnster_any_more() -> None:
    # "m" is deleted: a new report "a" is created without it.
    ledger = {"m": linked("m")}
    targets = {"m": UserTarget({}, hard_deleted=True), "a": target("a", **{MANAGER: "m"})}
    result = plan(targets, ledger, {}, {})
    assert result.phases == ((CreateUser("a", attrs("a")),), (DeleteUser("m"),))


def test_a_deleted_user_leaves_the_tags_it_was_in_without_requests() -> None:
    ledger = {"a": linked("a"), "b": linked("b")}
    groups = {"g": LedgerGroup("sg", "G", frozenset({"a", "b"}))}
    # The targets no longer list the deleted user as a member (build_targets leaves it out).
    result = plan(
        {"a": UserTarget({}, hard_deleted=True), "b": target("b")},
        ledger,
        {"g": GroupTarget("G", frozenset({"b"}))},
        groups,
    )
    assert result.operations == [DeleteUser("a")]


# -- waves of creates -----------------------------------------------------------------------


def test_each_create_is_in_the_first_wave_its_manager_allows() -> None:
    targets = {
        "a": target("a", **{MANAGER: "b"}),  # a and b manage each other: a cycle
        "b": target("b", **{MANAGER: "a"}),
        "r": target("r"),  # a root
        "s": target("s", **{MANAGER: "r"}),
        "t": target("t", **{MANAGER: "s"}),
        "k": target("k", **{MANAGER: "m"}),  # its manager is linked already: a root too
        "m": target("m"),
    }
    result = plan(targets, {"m": linked("m")}, {}, {})
    assert result.phases == (
        (
            CreateUser("a", attrs("a")),
            CreateUser("r", attrs("r")),
            CreateUser("k", attrs("k", **{MANAGER: "m"})),
        ),
        (
            CreateUser("b", attrs("b", **{MANAGER: "a"})),
            CreateUser("s", attrs("s", **{MANAGER: "r"})),
        ),
        (CreateUser("t", attrs("t", **{MANAGER: "s"})),),
        # the cut in the cycle: a gets its manager once b exists
        (UpdateUser("a", attrs("a"), attrs("a", **{MANAGER: "b"})),),
    )


def test_a_cycle_reached_through_a_report_is_cut_where_it_closes() -> None:
    # x reports into the cycle a -> b -> a; walking from x, the cycle closes at a.
    targets = {
        "x": target("x", **{MANAGER: "a"}),
        "a": target("a", **{MANAGER: "b"}),
        "b": target("b", **{MANAGER: "a"}),
    }
    result = plan(targets, {}, {}, {})
    assert result.phases == (
        (CreateUser("a", attrs("a")),),
        (
            CreateUser("x", attrs("x", **{MANAGER: "a"})),
            CreateUser("b", attrs("b", **{MANAGER: "a"})),
        ),
        (UpdateUser("a", attrs("a"), attrs("a", **{MANAGER: "b"})),),
    )


# -- creates, partial reads -----------------------------------------------------------------


def test_a_target_that_does_not_say_active_is_created() -> None:
    result = plan({"a": UserTarget({USER_NAME: "a@x.example"})}, {}, {}, {})
    assert result.operations == [CreateUser("a", {USER_NAME: "a@x.example"})]


def test_a_partial_read_deactivates_no_one_but_sends_what_it_read() -> None:
    ledger = {"a": linked("a", title="A")}
    targets = {"a": target("a", active=False, title="B")}
    result = plan(targets, ledger, {}, {}, PlanOptions(allow_removals=False))
    assert result.operations == [UpdateUser("a", attrs("a", title="A"), attrs("a", title="B"))]
    # A complete read deactivates the user.
    result = plan(targets, ledger, {}, {})
    assert result.operations == [
        UpdateUser("a", attrs("a", title="A"), attrs("a", active=False, title="B"))
    ]


def test_a_partial_read_sends_a_target_without_active_as_it_is() -> None:
    ledger = {"a": linked("a", title="A")}
    after = {USER_NAME: "a@x.example", TITLE: "B"}
    result = plan({"a": UserTarget(after)}, ledger, {}, {}, PlanOptions(allow_removals=False))
    assert result.operations == [UpdateUser("a", attrs("a", title="A"), after)]


def test_a_partial_read_removes_no_member_and_deletes_no_tag() -> None:
    ledger = {"a": linked("a"), "b": linked("b")}
    groups = {"g": LedgerGroup("sg", "G", frozenset({"a", "b"})), "h": LedgerGroup("sh", "H")}
    tags = {"g": GroupTarget("G", frozenset({"a"}))}
    targets = {"a": target("a"), "b": target("b")}
    assert len(plan(targets, ledger, tags, groups, PlanOptions(allow_removals=False))) == 0
    assert plan(targets, ledger, tags, groups).operations == [
        RemoveMembers("g", ("b",)),
        DeleteGroup("h"),
    ]


# -- tags -----------------------------------------------------------------------------------


def test_a_new_tag_carries_every_member_it_should_have() -> None:
    targets = {f"u{i}": target(f"u{i}") for i in range(3)}
    result = plan(
        targets,
        {},
        {"g": GroupTarget("G", frozenset(targets))},
        {},
        PlanOptions(member_batch_size=2),
    )
    (create,) = [op for op in result.operations if isinstance(op, CreateGroup)]
    assert create == CreateGroup("g", "G", ("u0",), frozenset(targets))
    assert [op for op in result.operations if isinstance(op, AddMembers)] == [
        AddMembers("g", ("u1", "u2"))
    ]


def test_a_renamed_tag_is_renamed_from_what_learnster_holds() -> None:
    groups = {"g": LedgerGroup("sg", "Old")}
    result = plan({}, {}, {"g": GroupTarget("New")}, groups)
    assert result.operations == [RenameGroup("g", "Old", "New")]
