"""The pure planner: table tests and properties (converges, idempotent, ordered, guarded)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.ledger import LedgerGroup, LedgerUser
from syncd.core.mapping import ACTIVE, MANAGER
from syncd.core.operations import (
    AddMembers,
    CreateGroup,
    CreateUser,
    DeleteGroup,
    DeleteUser,
    Plan,
    RemoveMembers,
    RenameGroup,
    UpdateUser,
    is_removal,
)
from syncd.core.planner import PlanOptions, plan
from syncd.core.targets import GroupTarget

Ledger = tuple[dict[str, LedgerUser], dict[str, LedgerGroup]]


def user(name: str, *, active: bool = True, manager: str | None = None, **extra: Any) -> Any:
    from syncd.core.targets import UserTarget

    attrs: dict[str, Any] = {"userName": f"{name}@x.example", ACTIVE: active, **extra}
    if manager:
        attrs[MANAGER] = manager
    return UserTarget(attrs)


def apply(the_plan: Plan, ledger: Ledger) -> Ledger:
    """Model of Learnster acknowledging every operation, as the engine records it."""
    users, groups = dict(ledger[0]), dict(ledger[1])
    ids = (f"scim-{n}" for n in itertools.count(len(users) + len(groups) + 1000))
    for op in the_plan.operations:
        if isinstance(op, CreateUser):
            attrs = dict(op.attrs)
            if attrs.get(MANAGER) not in (None, *users):
                attrs.pop(MANAGER)
            users[op.user_id] = LedgerUser(next(ids), attrs)
        elif isinstance(op, UpdateUser):
            assert dict(users[op.user_id].attrs) == dict(op.before)
            users[op.user_id] = LedgerUser(users[op.user_id].scim_id, op.after)
        elif isinstance(op, DeleteUser):
            del users[op.user_id]
            groups = {
                g: LedgerGroup(lg.scim_id, lg.display_name, lg.members - {op.user_id})
                for g, lg in groups.items()
            }
        elif isinstance(op, CreateGroup):
            groups[op.group_id] = LedgerGroup(next(ids), op.display_name, frozenset(op.user_ids))
        elif isinstance(op, RenameGroup):
            g = groups[op.group_id]
            groups[op.group_id] = LedgerGroup(g.scim_id, op.after, g.members)
        elif isinstance(op, AddMembers):
            g = groups[op.group_id]
            assert all(u in users for u in op.user_ids)
            groups[op.group_id] = LedgerGroup(
                g.scim_id, g.display_name, g.members | set(op.user_ids)
            )
        elif isinstance(op, RemoveMembers):
            g = groups[op.group_id]
            groups[op.group_id] = LedgerGroup(
                g.scim_id, g.display_name, g.members - set(op.user_ids)
            )
        elif isinstance(op, DeleteGroup):
            del groups[op.group_id]
    return users, groups


def test_new_users_are_created_managers_first_with_the_manager_in_the_post() -> None:
    targets = {"c": user("c", manager="b"), "b": user("b", manager="a"), "a": user("a")}
    result = plan(targets, {}, {}, {})
    assert [[op.user_id for op in phase] for phase in result.phases] == [["a"], ["b"], ["c"]]  # type: ignore[union-attr]
    assert result.phases[2][0].attrs[MANAGER] == "b"  # type: ignore[union-attr]


def test_manager_cycle_falls_back_to_a_later_manager_patch() -> None:
    targets = {"a": user("a", manager="b"), "b": user("b", manager="a")}
    result = plan(targets, {}, {}, {})
    ops = result.operations
    creates = [op for op in ops if isinstance(op, CreateUser)]
    updates = [op for op in ops if isinstance(op, UpdateUser)]
    assert len(creates) == 2
    assert len(updates) == 1
    assert updates[0].changes() == [(MANAGER, None, updates[0].after[MANAGER])]
    users, _ = apply(result, ({}, {}))
    assert {u: users[u].attrs.get(MANAGER) for u in users} == {"a": "b", "b": "a"}


def test_disabled_user_never_synced_is_not_created() -> None:
    assert len(plan({"a": user("a", active=False)}, {}, {}, {})) == 0


def test_soft_delete_sends_only_active_false() -> None:
    ledger = {"a": LedgerUser("s1", {"userName": "a@x.example", ACTIVE: True, "title": "T"})}
    result = plan({}, ledger, {}, {})
    [op] = result.operations
    assert isinstance(op, UpdateUser)
    assert op.changes() == [(ACTIVE, True, False)]


def test_partial_read_plans_no_removal() -> None:
    ledger = {"a": LedgerUser("s1", {"userName": "a@x.example", ACTIVE: True})}
    groups = {"g": LedgerGroup("sg", "G", frozenset({"a"}))}
    result = plan({}, ledger, {}, groups, PlanOptions(allow_removals=False))
    assert len(result) == 0


def test_hard_delete_deletes_or_deactivates_per_policy() -> None:
    from syncd.core.targets import UserTarget

    ledger = {"a": LedgerUser("s1", {"userName": "a@x.example", ACTIVE: True})}
    gone = {"a": UserTarget({}, hard_deleted=True)}
    assert [op.kind for op in plan(gone, ledger, {}, {}).operations] == ["delete_user"]
    deactivate = plan(gone, ledger, {}, {}, PlanOptions(on_hard_delete="deactivate"))
    assert [op.kind for op in deactivate.operations] == ["update_user"]


def test_deleted_user_leaves_its_tags_without_member_removal_requests() -> None:
    from syncd.core.targets import UserTarget

    ledger_users = {"a": LedgerUser("s1", {"userName": "a@x.example", ACTIVE: True})}
    ledger_groups = {"g": LedgerGroup("sg", "G", frozenset({"a"}))}
    result = plan(
        {"a": UserTarget({}, hard_deleted=True)},
        ledger_users,
        {"g": GroupTarget("G", frozenset({"a"}))},
        ledger_groups,
    )
    assert [op.kind for op in result.operations] == ["delete_user"]


def test_members_are_batched() -> None:
    targets = {f"u{i}": user(f"u{i}") for i in range(250)}
    result = plan(
        targets,
        {},
        {"g": GroupTarget("G", frozenset(targets))},
        {},
        PlanOptions(member_batch_size=100),
    )
    adds = [op for op in result.operations if isinstance(op, AddMembers)]
    assert sorted(len(op.user_ids) for op in adds) == [100, 100]
    # The 50 that do not fill a batch ride in the POST: 1 + ⌊250 ÷ 100⌋ requests, no more.
    (create,) = [op for op in result.operations if isinstance(op, CreateGroup)]
    assert len(create.user_ids) == 50
    assert set(create.user_ids).isdisjoint(u for op in adds for u in op.user_ids)
    assert set(create.user_ids) | {u for op in adds for u in op.user_ids} == set(targets)


def test_a_new_group_with_a_whole_number_of_batches_is_posted_empty() -> None:
    targets = {f"u{i}": user(f"u{i}") for i in range(200)}
    result = plan(targets, {}, {"g": GroupTarget("G", frozenset(targets))}, {})
    (create,) = [op for op in result.operations if isinstance(op, CreateGroup)]
    assert create.user_ids == ()
    assert [len(op.user_ids) for op in result.operations if isinstance(op, AddMembers)] == [
        100,
        100,
    ]


def test_guard_holds_all_removals_but_lets_creates_and_updates_through() -> None:
    ledger = {
        f"u{i}": LedgerUser(f"s{i}", {"userName": f"u{i}@x.example", ACTIVE: True})
        for i in range(5)
    }
    targets = {"new": user("new"), "u0": user("u0", title="changed")}
    result = plan(targets, ledger, {}, {}, PlanOptions(max_deletions=3))
    assert sorted(op.kind for op in result.operations) == ["create_user", "update_user"]
    assert len(result.held) == 4
    released = plan(targets, ledger, {}, {}, PlanOptions(max_deletions=3, allow_deletions=True))
    assert sum(1 for op in released.operations if is_removal(op)) == 4


def test_guard_trips_on_a_large_share_of_what_is_linked() -> None:
    ledger = {
        f"u{i}": LedgerUser(f"s{i}", {"userName": f"u{i}@x.example", ACTIVE: True})
        for i in range(8)
    }
    keep_three = {f"u{i}": user(f"u{i}") for i in range(3)}
    result = plan(keep_three, ledger, {}, {}, PlanOptions(max_deletions=500))
    assert len(result.held) == 5
    assert len(result) == 0
    keep_four = {f"u{i}": user(f"u{i}") for i in range(4)}
    assert len(plan(keep_four, ledger, {}, {}, PlanOptions(max_deletion_percent=80)).held) == 0
    assert len(plan(keep_three, ledger, {}, {}, PlanOptions(max_deletion_percent=0)).held) == 0


# -- properties -----------------------------------------------------------------------------

NAMES = [f"u{i}" for i in range(12)]
GROUP_NAMES = ["g1", "g2", "g3"]


@st.composite
def directories(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, GroupTarget]]:
    from syncd.core.targets import UserTarget

    present = draw(st.lists(st.sampled_from(NAMES), unique=True))
    targets: dict[str, UserTarget] = {}
    for name in present:
        kind = draw(st.sampled_from(["active", "active", "disabled", "hard_deleted"]))
        if kind == "hard_deleted":
            targets[name] = UserTarget({}, hard_deleted=True)
            continue
        manager = draw(st.none() | st.sampled_from(NAMES))
        title = draw(st.sampled_from([None, "A", "B"]))
        extra = {"title": title} if title else {}
        targets[name] = user(
            name,
            active=kind == "active",
            manager=manager if manager != name else None,
            **extra,
        )
    groups = {
        g: GroupTarget(
            draw(st.sampled_from(["Sales", "Ops", g])),
            frozenset(draw(st.sets(st.sampled_from(present or ["x"])))),
        )
        for g in draw(st.lists(st.sampled_from(GROUP_NAMES), unique=True))
    }
    return targets, groups


def _manager_closed(targets: Mapping[str, Any]) -> dict[str, Any]:
    """The engine only names managers that are present, active users; mirror that here."""
    from syncd.core.targets import UserTarget

    fixed = {}
    for uid, t in targets.items():
        manager = t.attrs.get(MANAGER)
        target_manager = targets.get(manager) if manager else None
        if manager and (
            target_manager is None
            or target_manager.hard_deleted
            or not target_manager.attrs.get(ACTIVE)
        ):
            t = UserTarget({k: v for k, v in t.attrs.items() if k != MANAGER}, t.hard_deleted)
        fixed[uid] = t
    return fixed


@settings(max_examples=300, deadline=None)
@given(directories(), directories())
def test_applying_a_plan_converges_and_replanning_yields_nothing(
    first: tuple[dict[str, Any], dict[str, GroupTarget]],
    second: tuple[dict[str, Any], dict[str, GroupTarget]],
) -> None:
    ledger: Ledger = ({}, {})
    for targets, groups in (first, second):
        targets = _manager_closed(targets)
        result = plan(
            targets,
            *ledger[:1],
            groups,
            ledger[1],
            PlanOptions(max_deletions=0, max_deletion_percent=0),
        )
        ledger = apply(result, ledger)
        again = plan(
            targets,
            ledger[0],
            groups,
            ledger[1],
            PlanOptions(max_deletions=0, max_deletion_percent=0),
        )
        assert len(again) == 0, again.operations
        # Converged: every active target user exists with exactly its attributes.
        for uid, t in targets.items():
            if t.hard_deleted:
                assert uid not in ledger[0]
            elif uid in ledger[0]:
                assert dict(ledger[0][uid].attrs) == dict(t.attrs)
            else:
                assert not t.attrs[ACTIVE]
        assert set(ledger[1]) == set(groups)


@settings(max_examples=300, deadline=None)
@given(directories(), directories())
def test_no_operation_refers_to_an_object_created_later(
    first: tuple[dict[str, Any], dict[str, GroupTarget]],
    second: tuple[dict[str, Any], dict[str, GroupTarget]],
) -> None:
    ledger = apply(plan(_manager_closed(first[0]), {}, first[1], {}), ({}, {}))
    result = plan(_manager_closed(second[0]), ledger[0], second[1], ledger[1])
    existing_users, existing_groups = set(ledger[0]), set(ledger[1])
    for phase in result.phases:
        created_users = {op.user_id for op in phase if isinstance(op, CreateUser)}
        created_groups = {op.group_id for op in phase if isinstance(op, CreateGroup)}
        for op in phase:
            if isinstance(op, CreateUser) and MANAGER in op.attrs:
                assert op.attrs[MANAGER] in existing_users
            if isinstance(op, UpdateUser | DeleteUser):
                assert op.user_id in existing_users
            if isinstance(op, AddMembers | RemoveMembers | RenameGroup | DeleteGroup):
                assert op.group_id in existing_groups
            if isinstance(op, AddMembers | CreateGroup):
                assert set(op.user_ids) <= existing_users
        existing_users |= created_users
        existing_groups |= created_groups


@settings(max_examples=200, deadline=None)
@given(directories(), directories(), st.integers(min_value=1, max_value=4))
def test_removals_respect_the_guard(
    first: tuple[dict[str, Any], dict[str, GroupTarget]],
    second: tuple[dict[str, Any], dict[str, GroupTarget]],
    limit: int,
) -> None:
    ledger = apply(plan(_manager_closed(first[0]), {}, first[1], {}), ({}, {}))
    options = PlanOptions(max_deletions=limit, max_deletion_percent=0)
    result = plan(_manager_closed(second[0]), ledger[0], second[1], ledger[1], options)
    removals = [op for op in result.operations if is_removal(op)]
    assert len(removals) <= limit
    assert not result.held or not removals
    assert all(is_removal(op) for op in result.held)
