"""The operations a plan consists of, the plan itself, and what applying one can come to."""

from __future__ import annotations

import json
from collections.abc import Mapping, Set
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple

from syncd.core.attrs import as_dict
from syncd.core.mapping import ACTIVE


class OperationKind(StrEnum):
    """What an operation does; the names appear in plans, logs, reports and metrics."""

    CREATE_USER = "create_user"
    UPDATE_USER = "update_user"
    DELETE_USER = "delete_user"
    CREATE_GROUP = "create_group"
    RENAME_GROUP = "rename_group"
    ADD_MEMBERS = "add_members"
    REMOVE_MEMBERS = "remove_members"
    DELETE_GROUP = "delete_group"


class Outcome(StrEnum):
    """What became of one operation when it was applied (or why it was not)."""

    CREATED = "created"
    ADOPTED = "adopted"  # Learnster had it already: linked, and updated where it differed
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # Learnster held it already (an adopted tag): nothing sent
    DEACTIVATED = "deactivated"
    DELETED = "deleted"
    FAILED = "failed"  # escrowed, retried in a later cycle
    SKIPPED = "skipped"  # depends on an object that does not exist in Learnster (yet)
    STALE = "stale"  # the ledger changed since the plan was made: planned again next cycle
    DEFERRED = "deferred"  # in escrow, its next retry not due yet
    NOT_SENT = "not sent (quarantine)"


@dataclass(frozen=True, slots=True)
class CreateUser:
    user_id: str
    attrs: Mapping[str, Any]
    kind: ClassVar[OperationKind] = OperationKind.CREATE_USER


@dataclass(frozen=True, slots=True)
class UpdateUser:
    user_id: str
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    kind: ClassVar[OperationKind] = OperationKind.UPDATE_USER

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
    kind: ClassVar[OperationKind] = OperationKind.DELETE_USER


@dataclass(frozen=True, slots=True)
class CreateGroup:
    group_id: str
    display_name: str
    # Members that ride in the POST: the part of the members that does not fill a whole
    # PATCH batch, so a new tag costs 1 + ⌊members ÷ batch size⌋ requests.
    user_ids: tuple[str, ...] = ()
    # Every member the tag should have (the rest follow in AddMembers): what a tag Learnster
    # already holds is made to match when it is adopted instead of created.
    members: frozenset[str] = frozenset()
    kind: ClassVar[OperationKind] = OperationKind.CREATE_GROUP


@dataclass(frozen=True, slots=True)
class RenameGroup:
    group_id: str
    before: str
    after: str
    kind: ClassVar[OperationKind] = OperationKind.RENAME_GROUP


@dataclass(frozen=True, slots=True)
class AddMembers:
    group_id: str
    user_ids: tuple[str, ...]
    kind: ClassVar[OperationKind] = OperationKind.ADD_MEMBERS


@dataclass(frozen=True, slots=True)
class RemoveMembers:
    group_id: str
    user_ids: tuple[str, ...]
    kind: ClassVar[OperationKind] = OperationKind.REMOVE_MEMBERS


@dataclass(frozen=True, slots=True)
class DeleteGroup:
    group_id: str
    kind: ClassVar[OperationKind] = OperationKind.DELETE_GROUP


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


USER_OPERATIONS = (CreateUser, UpdateUser, DeleteUser)


def is_removal(op: Operation) -> bool:
    """Deactivations and deletions of users and groups: what the deletion guard counts."""
    if isinstance(op, UpdateUser):
        return op.deactivates
    return isinstance(op, DeleteUser | DeleteGroup)


def object_id(op: Operation) -> str:
    """The Graph object id of the user or group ``op`` is about."""
    return op.user_id if isinstance(op, USER_OPERATIONS) else op.group_id


def object_type(op: Operation) -> str:
    """ "user" or "group": what kind of object ``op`` is about."""
    return "user" if isinstance(op, USER_OPERATIONS) else "group"


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


def operation_changes(op: Operation) -> dict[str, list[Any]]:
    """What ``op`` changes, as the provisioning log keeps it: attribute path -> [old, new], None
    where there is no value. A create's attributes are all new; a tag's members are
    ``"members": [removed, added]``, lists of Graph user ids (None: none); a delete changes
    no attribute (``{}``)."""
    if isinstance(op, CreateUser):
        return {path: [None, value] for path, value in sorted(as_dict(op.attrs).items())}
    if isinstance(op, UpdateUser):
        before, after = as_dict(op.before), as_dict(op.after)
        return {
            path: [before.get(path), after.get(path)]
            for path in sorted(before.keys() | after.keys())
            if before.get(path) != after.get(path)
        }
    if isinstance(op, CreateGroup):
        created: dict[str, list[Any]] = {"displayName": [None, op.display_name]}
        if op.user_ids:
            created["members"] = [None, list(op.user_ids)]
        return created
    if isinstance(op, RenameGroup):
        return {"displayName": [op.before, op.after]}
    if isinstance(op, AddMembers):
        return {"members": [None, list(op.user_ids)]}
    if isinstance(op, RemoveMembers):
        return {"members": [list(op.user_ids), None]}
    return {}


# What a saved plan says about an operation for its reader, not what the operation does.
ANNOTATIONS = frozenset({"label", "match", "guest", "why"})


def _operation_key(data: Mapping[str, Any]) -> str:
    return json.dumps(
        {k: v for k, v in data.items() if k not in ANNOTATIONS}, sort_keys=True, default=str
    )


class Restricted(NamedTuple):
    plan: Plan  # the approved operations that are still valid
    stale: list[dict[str, Any]]  # the approved operations planning no longer yields


def restrict_plan(fresh: Plan, approved: list[dict[str, Any]]) -> Restricted:
    """The operations of ``fresh`` that were approved, and the approved ones no longer valid.

    An operation is still valid only if planning now yields exactly the same operation (same
    object, same old and new values): anything that changed since the review is not applied
    blind.
    """
    wanted = {_operation_key(op): op for op in approved}
    phases = tuple(
        tuple(op for op in phase if _operation_key(operation_to_json(op)) in wanted)
        for phase in fresh.phases
    )
    kept = {_operation_key(operation_to_json(op)) for phase in phases for op in phase}
    held = tuple(op for op in fresh.held if _operation_key(operation_to_json(op)) in wanted)
    kept |= {_operation_key(operation_to_json(op)) for op in held}
    stale = [op for key, op in wanted.items() if key not in kept]
    return Restricted(Plan(phases=tuple(p for p in phases if p), held=held), stale)


class Deferred(NamedTuple):
    plan: Plan  # what may be sent now
    deferred: list[Operation]  # operations on objects whose escrow retry is not due yet


def defer(the_plan: Plan, waiting: Set[str]) -> Deferred:
    """Hold back operations on objects whose escrow backoff has not run out yet."""
    if not waiting:
        return Deferred(the_plan, [])
    deferred = [op for op in the_plan.operations if object_id(op) in waiting]
    phases = tuple(
        kept
        for phase in the_plan.phases
        if (kept := tuple(op for op in phase if object_id(op) not in waiting))
    )
    return Deferred(Plan(phases=phases, held=the_plan.held), deferred)
