"""Pure planner: desired state versus the ledger gives an ordered plan of SCIM operations.

No I/O, no clock. Operations refer to objects by Graph object id; the cycle resolves
Learnster ids when it sends, because creates earlier in the same plan assign them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from syncd.core.attrs import PackedAttrs, as_dict
from syncd.core.ledger import LedgerGroup, LedgerUser
from syncd.core.mapping import ACTIVE, MANAGER
from syncd.core.operations import (
    AddMembers,
    CreateGroup,
    CreateUser,
    DeleteGroup,
    DeleteUser,
    Operation,
    Plan,
    RemoveMembers,
    RenameGroup,
    UpdateUser,
    is_removal,
)
from syncd.core.targets import GroupTarget, UserTarget, members_within


@dataclass(frozen=True)
class PlanOptions:
    """Policy the planner applies."""

    allow_removals: bool = True  # False after a partial directory read
    on_hard_delete: str = "delete"  # delete | deactivate
    max_deletions: int = 500  # 0 = guard off
    # Also hold when removals reach this share of what is linked (an emptied scope group,
    # a revoked permission): small tenants never reach max_deletions. 0 = off.
    max_deletion_percent: int = 50
    allow_deletions: bool = False  # release the guard once
    member_batch_size: int = 100


@dataclass
class _Builder:
    creates: dict[str, CreateUser] = field(default_factory=dict)
    updates: list[UpdateUser] = field(default_factory=list)
    removals: list[Operation] = field(default_factory=list)
    group_ops: list[Operation] = field(default_factory=list)
    member_ops: list[Operation] = field(default_factory=list)


def plan(
    users: Mapping[str, UserTarget],
    ledger_users: Mapping[str, LedgerUser],
    groups: Mapping[str, GroupTarget],
    ledger_groups: Mapping[str, LedgerGroup],
    options: PlanOptions = PlanOptions(),
    linked_users: AbstractSet[str] | None = None,
    linked_count: int | None = None,
) -> Plan:
    """Compare targets with the ledger and order the operations that make Learnster match.

    A user in the ledger without a target is deactivated and a group without a target is
    deleted, but only when ``options.allow_removals`` (a complete read).
    ``linked_users``: every user id Learnster holds, when ``ledger_users`` is only the part of
    the ledger this plan is about (incremental planning); managers and members are checked
    against it. ``linked_count``: how many users Learnster holds in all (the guard's base)
    when ``linked_users`` is itself only the part that matters.
    """
    b = _Builder()
    deleted: set[str] = set()
    for user_id, target in users.items():
        linked = ledger_users.get(user_id)
        if target.hard_deleted:
            if linked is None:
                continue
            if options.on_hard_delete == "delete":
                if options.allow_removals:
                    b.removals.append(DeleteUser(user_id))
                    deleted.add(user_id)
                continue
            target = UserTarget({**linked.attrs, ACTIVE: False})
        if linked is None:
            if target.attrs.get(ACTIVE, True):
                b.creates[user_id] = CreateUser(user_id, target.attrs)
            continue
        if not options.allow_removals and linked.active and not target.attrs.get(ACTIVE, True):
            target = UserTarget({**as_dict(target.attrs), ACTIVE: True})
        if not linked.holds(target.attrs):
            update = UpdateUser(user_id, linked.attrs, as_dict(target.attrs))
            (b.removals if update.deactivates else b.updates).append(update)
    if options.allow_removals:
        for user_id, linked in ledger_users.items():
            if user_id not in users and linked.active:
                b.removals.append(
                    UpdateUser(user_id, linked.attrs, {**linked.attrs, ACTIVE: False})
                )

    linked_ids = set(ledger_users) if linked_users is None else set(linked_users)
    in_learnster = (linked_ids - deleted) | set(b.creates)
    _fix_manager_references(b, in_learnster)
    waves = _create_waves(b)
    _plan_groups(b, groups, ledger_groups, in_learnster, deleted, options)

    held: tuple[Operation, ...] = ()
    removal_count = sum(1 for op in [*b.removals, *b.group_ops] if is_removal(op))
    linked_total = (len(linked_ids) if linked_count is None else linked_count) + len(ledger_groups)
    if not options.allow_deletions and guard_trips(removal_count, linked_total, options):
        held = tuple(op for op in [*b.removals, *b.group_ops] if is_removal(op))
        b.removals = []
        b.group_ops = [op for op in b.group_ops if not is_removal(op)]

    phases = [
        *waves,
        (*b.updates, *(op for op in b.group_ops if isinstance(op, CreateGroup | RenameGroup))),
        tuple(b.member_ops),
        (*b.removals, *(op for op in b.group_ops if isinstance(op, DeleteGroup))),
    ]
    return Plan(phases=tuple(tuple(p) for p in phases if p), held=held)


# Below this many removals the percentage rule stays quiet: 2 leavers of 3 is a normal day.
PERCENT_RULE_MIN_REMOVALS = 5


def guard_trips(removals: int, linked: int, options: PlanOptions) -> bool:
    """The accidental-deletion guard: too many removals, absolutely or relatively."""
    if options.max_deletions and removals > options.max_deletions:
        return True
    return bool(
        options.max_deletion_percent
        and removals >= PERCENT_RULE_MIN_REMOVALS
        and removals * 100 >= options.max_deletion_percent * linked
    )


def _fix_manager_references(b: _Builder, in_learnster: set[str]) -> None:
    """Drop manager references to users that will not exist in Learnster."""
    for user_id, create in list(b.creates.items()):
        manager = create.attrs.get(MANAGER)
        if manager is not None and manager not in in_learnster:
            b.creates[user_id] = CreateUser(user_id, PackedAttrs(_without(create.attrs, MANAGER)))
    for ops in (b.updates, b.removals):
        for i, op in enumerate(ops):
            if not isinstance(op, UpdateUser):
                continue
            manager = op.after.get(MANAGER)
            if manager is not None and manager not in in_learnster:
                after = _without(op.after, MANAGER)
                if MANAGER in op.before and op.before[MANAGER] not in in_learnster:
                    after = {**after, MANAGER: op.before[MANAGER]}
                ops[i] = UpdateUser(op.user_id, op.before, after)
    b.updates[:] = [op for op in b.updates if op.changes()]
    b.removals[:] = [op for op in b.removals if not isinstance(op, UpdateUser) or op.changes()]


def _create_waves(b: _Builder) -> list[tuple[Operation, ...]]:
    """Creates in topological order of the manager tree so managers ride in the POST.

    A manager cycle among new users is broken: the user is created without a manager and a
    follow-up update sets it once everyone exists.
    """
    depth: dict[str, int] = {}
    for start in b.creates:
        path: list[str] = []
        on_path: set[str] = set()
        node: Any = start
        while True:
            if node not in b.creates:
                base = -1
                break
            if node in depth:
                base = depth[node]
                break
            if node in on_path:  # a manager cycle: cut it here, this user becomes a root
                create = b.creates[node]
                b.creates[node] = CreateUser(node, PackedAttrs(_without(create.attrs, MANAGER)))
                b.updates.append(
                    UpdateUser(node, as_dict(b.creates[node].attrs), as_dict(create.attrs))
                )
                depth[node] = base = 0
                path = path[: path.index(node)]
                break
            path.append(node)
            on_path.add(node)
            node = b.creates[node].attrs.get(MANAGER)
        for member in reversed(path):
            base += 1
            depth[member] = base
    waves: dict[int, list[Operation]] = {}
    for user_id, create in b.creates.items():
        waves.setdefault(depth[user_id], []).append(create)
    return [tuple(waves[d]) for d in sorted(waves)]


def _plan_groups(
    b: _Builder,
    groups: Mapping[str, GroupTarget],
    ledger_groups: Mapping[str, LedgerGroup],
    in_learnster: set[str],
    deleted: set[str],
    options: PlanOptions,
) -> None:
    batch = options.member_batch_size
    for group_id, target in groups.items():
        linked = ledger_groups.get(group_id)
        wanted = members_within(target.members, in_learnster)
        if linked is None:
            adds = sorted(wanted)
            carried = len(adds) % batch
            b.group_ops.append(
                CreateGroup(group_id, target.display_name, tuple(adds[:carried]), wanted)
            )
            adds = adds[carried:]
            current: frozenset[str] = frozenset()
        else:
            current = linked.members
            if linked.display_name != target.display_name:
                b.group_ops.append(RenameGroup(group_id, linked.display_name, target.display_name))
            adds = sorted(wanted - current)
        # A user deleted from Learnster leaves its tags with it: no removal request.
        removes = sorted(current - wanted - deleted) if options.allow_removals else []
        b.member_ops.extend(AddMembers(group_id, chunk) for chunk in _chunks(adds, batch))
        b.member_ops.extend(RemoveMembers(group_id, chunk) for chunk in _chunks(removes, batch))
    if options.allow_removals:
        b.group_ops.extend(DeleteGroup(gid) for gid in ledger_groups if gid not in groups)


def _chunks(items: list[str], size: int) -> Iterable[tuple[str, ...]]:
    for start in range(0, len(items), size):
        yield tuple(items[start : start + size])


def _without(attrs: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k != key}
