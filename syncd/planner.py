"""Pure planner: desired state versus the ledger gives an ordered plan of SCIM operations.

No I/O, no clock. Operations refer to objects by Graph object id; the engine resolves
Learnster ids when it sends, because creates earlier in the same plan assign them.
"""

from __future__ import annotations

import json
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from syncd.mapping import ACTIVE, MANAGER


@dataclass(frozen=True, slots=True)
class UserTarget:
    """What Learnster should hold for one directory user (flat attributes incl. ``active``)."""

    attrs: Mapping[str, Any]
    hard_deleted: bool = False


@dataclass(frozen=True, slots=True)
class GroupTarget:
    """What Learnster should hold for one group (tag): its name and direct user members."""

    display_name: str
    members: frozenset[str] = frozenset()


def canonical_json(attrs: Mapping[str, Any]) -> str:
    """The one text form of a flat attribute set (how the ledger stores it)."""
    if isinstance(attrs, PackedAttrs):
        return attrs.json
    return json.dumps(attrs, sort_keys=True, separators=(",", ":"))


_ABSENT: Any = object()


class PackedAttrs(Mapping[str, Any]):
    """A read-only flat attribute set kept as one JSON array of its values.

    The targets and creates of 100,000 users as dicts cost ~150 MB; as canonical JSON ~125 MB
    (the SCIM paths are long); as values only, with the sorted keys shared between users
    with the same attributes, under half of that. ``active`` and ``manager``, which the
    planner reads for every user, stay unpacked; anything else unpacks the text, so hot paths
    call ``unpack()`` once (see ``as_dict``).
    """

    __slots__ = ("_active", "_keys", "_manager", "_values")

    def __init__(self, attrs: Mapping[str, Any]) -> None:
        keys = tuple(sorted(attrs))
        self._keys = _KEY_SETS.setdefault(keys, keys)
        self._values = json.dumps(
            [attrs[k] for k in keys], ensure_ascii=False, separators=(",", ":")
        )
        self._active = attrs.get(ACTIVE, _ABSENT)
        self._manager = attrs.get(MANAGER, _ABSENT)

    @property
    def json(self) -> str:
        """The canonical JSON text (``canonical_json``), as the ledger stores it."""
        return json.dumps(self.unpack(), sort_keys=True, separators=(",", ":"))

    def unpack(self) -> dict[str, Any]:
        return dict(zip(self._keys, json.loads(self._values), strict=True))

    def __getitem__(self, key: str) -> Any:
        fast = self._active if key == ACTIVE else self._manager if key == MANAGER else None
        if fast is _ABSENT:
            raise KeyError(key)
        return fast if fast is not None else self.unpack()[key]

    def __contains__(self, key: object) -> bool:
        if key == ACTIVE:
            return self._active is not _ABSENT
        if key == MANAGER:
            return self._manager is not _ABSENT
        return key in self.unpack()

    def __iter__(self) -> Iterator[str]:
        return iter(self.unpack())

    def __len__(self) -> int:
        return len(self.unpack())

    def keys(self) -> KeysView[str]:
        return self.unpack().keys()

    def items(self) -> ItemsView[str, Any]:
        return self.unpack().items()

    def values(self) -> ValuesView[Any]:
        return self.unpack().values()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedAttrs):
            return other._keys == self._keys and other._values == self._values
        return isinstance(other, Mapping) and self.unpack() == dict(other.items())

    __hash__ = None  # type: ignore[assignment]  # a Mapping, compared by value

    def __repr__(self) -> str:
        return f"PackedAttrs({self.unpack()!r})"


# Sorted key tuples shared by every PackedAttrs with the same attributes (a few dozen sets).
_KEY_SETS: dict[tuple[str, ...], tuple[str, ...]] = {}


def as_dict(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict of ``attrs``, unpacking PackedAttrs in one parse (``dict()`` takes one per key)."""
    return attrs.unpack() if isinstance(attrs, PackedAttrs) else dict(attrs)


class LedgerUser:
    """What Learnster acknowledged for one user: its id and the attributes last sent.

    The attributes are kept as their canonical JSON text and parsed on demand: a ledger of
    100,000 users as dicts would cost ~150 MB, as text about a third of that.
    """

    __slots__ = ("_json", "scim_id")

    def __init__(
        self, scim_id: str, attrs: Mapping[str, Any] | None = None, *, attrs_json: str = ""
    ) -> None:
        self.scim_id = scim_id
        self._json = attrs_json or canonical_json(attrs or {})

    @property
    def attrs(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self._json)
        return parsed

    @property
    def attrs_json(self) -> str:
        return self._json

    def holds(self, attrs: Mapping[str, Any]) -> bool:
        """Whether ``attrs`` is exactly what was last acknowledged."""
        return canonical_json(attrs) == self._json

    @property
    def active(self) -> bool:
        return bool(self.attrs.get(ACTIVE, True))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, LedgerUser)
            and other.scim_id == self.scim_id
            and other._json == self._json
        )

    def __hash__(self) -> int:
        return hash((self.scim_id, self._json))

    def __repr__(self) -> str:
        return f"LedgerUser({self.scim_id!r}, attrs_json={self._json!r})"


@dataclass(frozen=True, slots=True)
class LedgerGroup:
    """What Learnster acknowledged for one group."""

    scim_id: str
    display_name: str
    members: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class CreateUser:
    user_id: str
    attrs: Mapping[str, Any]
    kind = "create_user"


@dataclass(frozen=True, slots=True)
class UpdateUser:
    user_id: str
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    kind = "update_user"

    @property
    def deactivates(self) -> bool:
        return bool(self.before.get(ACTIVE, True)) and not self.after.get(ACTIVE, True)

    def changes(self) -> list[tuple[str, Any, Any]]:
        """(path, old, new) for every attribute that differs; None where absent."""
        keys = sorted(set(self.before) | set(self.after))
        return [
            (k, self.before.get(k), self.after.get(k))
            for k in keys
            if self.before.get(k) != self.after.get(k)
        ]


@dataclass(frozen=True, slots=True)
class DeleteUser:
    user_id: str
    kind = "delete_user"


@dataclass(frozen=True, slots=True)
class CreateGroup:
    group_id: str
    display_name: str
    # Members that ride in the POST: the part of the members that does not fill a whole
    # PATCH batch, so a new tag costs 1 + ⌊members ÷ batch size⌋ requests.
    user_ids: tuple[str, ...] = ()
    kind = "create_group"


@dataclass(frozen=True, slots=True)
class RenameGroup:
    group_id: str
    before: str
    after: str
    kind = "rename_group"


@dataclass(frozen=True, slots=True)
class AddMembers:
    group_id: str
    user_ids: tuple[str, ...]
    kind = "add_members"


@dataclass(frozen=True, slots=True)
class RemoveMembers:
    group_id: str
    user_ids: tuple[str, ...]
    kind = "remove_members"


@dataclass(frozen=True, slots=True)
class DeleteGroup:
    group_id: str
    kind = "delete_group"


Operation = (
    CreateUser
    | UpdateUser
    | DeleteUser
    | CreateGroup
    | RenameGroup
    | AddMembers
    | RemoveMembers
    | DeleteGroup
)


def is_removal(op: Operation) -> bool:
    """Deactivations and deletions of users and groups: what the deletion guard counts."""
    if isinstance(op, UpdateUser):
        return op.deactivates
    return isinstance(op, DeleteUser | DeleteGroup)


def object_id(op: Operation) -> str:
    return op.user_id if isinstance(op, CreateUser | UpdateUser | DeleteUser) else op.group_id


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


@dataclass(frozen=True)
class Plan:
    """Operations in phases: everything in one phase may run concurrently."""

    phases: tuple[tuple[Operation, ...], ...] = ()
    held: tuple[Operation, ...] = ()  # removals held back by the deletion guard

    @property
    def operations(self) -> list[Operation]:
        return [op for phase in self.phases for op in phase]

    def __len__(self) -> int:
        return sum(len(phase) for phase in self.phases)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.operations:
            counts[op.kind] = counts.get(op.kind, 0) + 1
        return counts


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
    """The accidental-deletion guard (DESIGN §6): too many removals, absolutely or relatively."""
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
        waves.setdefault(depth.get(user_id, 0), []).append(create)
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
            b.group_ops.append(CreateGroup(group_id, target.display_name, tuple(adds[:carried])))
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


def members_within(members: frozenset[str], allowed: AbstractSet[str]) -> frozenset[str]:
    """``members & allowed``, sharing ``members`` when nothing is left out (the usual case):
    400 groups with 500,000 memberships would otherwise be held twice."""
    return members if members <= allowed else members & allowed


def _chunks(items: list[str], size: int) -> Iterable[tuple[str, ...]]:
    for start in range(0, len(items), size):
        yield tuple(items[start : start + size])


def _without(attrs: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k != key}


def operation_to_json(op: Operation) -> dict[str, Any]:
    """A JSON-ready description of one operation (plans, --json output)."""
    data: dict[str, Any] = {"kind": op.kind, "object": object_id(op)}
    if isinstance(op, CreateUser):
        data["attributes"] = as_dict(op.attrs)
    elif isinstance(op, UpdateUser):
        data["changes"] = [{"path": p, "old": o, "new": n} for p, o, n in op.changes()]
    elif isinstance(op, CreateGroup):
        data["displayName"] = op.display_name
        if op.user_ids:
            data["members"] = list(op.user_ids)
    elif isinstance(op, RenameGroup):
        data["changes"] = [{"path": "displayName", "old": op.before, "new": op.after}]
    elif isinstance(op, AddMembers | RemoveMembers):
        data["members"] = list(op.user_ids)
    return data
