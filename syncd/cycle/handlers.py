"""One handler per kind of operation, and the table of what each does when a request fails.

A handler sends the requests of one operation and records what Learnster acknowledged. When a
request fails, the error's class names a general recovery (syncd.errors.Recovery); HANDLING
says what that recovery is for each kind of operation. Anything the table does not name fails
the object alone (escrowed, retried next cycle); a StopCycle ends the cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from syncd.core.attrs import as_dict
from syncd.core.ledger import LedgerUser
from syncd.core.mapping import MANAGER, USER_NAME
from syncd.core.messages import (
    add_members_operation,
    build_user_resource,
    flatten_user_resource,
    group_resource,
    remove_member_operation,
    rename_operation,
    user_patch_operations,
)
from syncd.core.operations import (
    AddMembers,
    CreateGroup,
    CreateUser,
    DeleteGroup,
    DeleteUser,
    Operation,
    OperationKind,
    Outcome,
    RemoveMembers,
    RenameGroup,
    UpdateUser,
)
from syncd.cycle.links import Links
from syncd.cycle.matching import Matcher
from syncd.cycle.tally import Tally
from syncd.errors import ConflictError, Recovery, RejectedError, ScimError
from syncd.ports import ScimTarget

log = logging.getLogger("syncd.cycle")


class Handlers:
    """The requests of each kind of operation, with the ledger writes that follow them."""

    def __init__(
        self,
        target: ScimTarget,
        links: Links,
        matcher: Matcher,
        tally: Tally,
        intents: Mapping[str, str],
    ) -> None:
        self.target = target
        self.links = links
        self.matcher = matcher
        self.tally = tally
        self._intents = intents

    # -- users ---------------------------------------------------------------------------------

    async def create_user(self, op: CreateUser) -> None:
        attrs = as_dict(op.attrs)
        user_name = str(attrs[USER_NAME])
        if op.user_id in self._intents and not self.matcher.listed:
            log.info("%s: a create was interrupted before; matching it first", user_name)
        existing = await self.matcher.user(user_name)
        if existing is not None:
            await self._adopt_user(op, attrs, existing)
            return
        manager = attrs.get(MANAGER)
        manager_scim = self.links.resolve(manager) if manager else None
        if manager and manager_scim is None:
            attrs.pop(MANAGER)  # manager failed or is not there yet: a later cycle links it
        self.links.ledger.record_intent(op.user_id, user_name)
        created = await self.target.create_user(build_user_resource(attrs, manager_scim))
        self.links.record_user(op.user_id, LedgerUser(created["id"], attrs))
        self.tally.outcome(op, Outcome.CREATED)

    async def adopt_after_conflict(self, op: CreateUser, exc: ScimError) -> None:
        """409 on create: Learnster has the user after all (a race, a stale list): adopt it."""
        attrs = as_dict(op.attrs)
        existing = await self.target.find_user(str(attrs[USER_NAME]))
        if existing is None:
            raise exc
        manager = attrs.get(MANAGER)
        if manager and self.links.resolve(manager) is None:
            attrs.pop(MANAGER)
        await self._adopt_user(op, attrs, existing)

    async def _adopt_user(
        self, op: CreateUser, attrs: dict[str, Any], existing: Mapping[str, Any]
    ) -> None:
        """Link a user Learnster already has and update it to the mapped values."""
        current = flatten_user_resource(existing)
        if current.get(MANAGER):
            # Compare managers by Graph id: translate Learnster's manager id back if we know it.
            current[MANAGER] = self.links.graph_id_of(current[MANAGER]) or current[MANAGER]
        ops = user_patch_operations(current, attrs, self.links.resolve, remove_missing=False)
        sent = self._acknowledged(current, attrs)
        if ops:
            try:
                await self.target.patch_user(existing["id"], ops)
            except ConflictError as exc:  # not the create's conflict: adopting failed
                raise RejectedError(str(exc), status=exc.status, detail=exc.detail) from exc
        self.links.record_user(op.user_id, LedgerUser(existing["id"], sent), adopted=True)
        self.tally.outcome(op, Outcome.ADOPTED)

    def _acknowledged(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
        """What Learnster holds after a PATCH from before to after (unresolvable manager kept)."""
        sent = dict(after)
        manager = after.get(MANAGER)
        if (
            manager is not None
            and before.get(MANAGER) != manager
            and self.links.resolve(manager) is None
        ):
            if MANAGER in before:
                sent[MANAGER] = before[MANAGER]
            else:
                sent.pop(MANAGER)
        return sent

    async def update_user(self, op: UpdateUser) -> None:
        scim_id = self.links.resolve(op.user_id)
        if scim_id is None or not self.links.holds(op.user_id, op.before):
            self.tally.outcome(op, Outcome.STALE)
            return
        ops = user_patch_operations(op.before, op.after, self.links.resolve)
        sent = self._acknowledged(op.before, op.after)
        if ops:
            await self.target.patch_user(scim_id, ops)
        self.links.record_user(op.user_id, LedgerUser(scim_id, sent))
        self.tally.outcome(op, Outcome.DEACTIVATED if op.deactivates else Outcome.UPDATED)

    async def recreate_user(self, op: UpdateUser, exc: ScimError) -> None:
        """Deleted in Learnster behind syncd's back: forget the link and provision again."""
        self.links.forget_user(op.user_id)
        if op.after.get("active", True):
            await self.dispatch(CreateUser(op.user_id, op.after), inner=True)

    async def delete_user(self, op: DeleteUser) -> None:
        scim_id = self.links.resolve(op.user_id)
        if scim_id is None:
            return
        await self.target.delete_user(scim_id)
        self.user_deleted(op)

    def user_deleted(self, op: DeleteUser, exc: ScimError | None = None) -> None:
        """The user is gone from Learnster: deleted now, or already (the goal is reached)."""
        self.links.forget_user(op.user_id)
        self.tally.outcome(op, Outcome.DELETED)

    async def user_already_deleted(self, op: DeleteUser, exc: ScimError) -> None:
        self.user_deleted(op)

    # -- groups --------------------------------------------------------------------------------

    async def create_group(self, op: CreateGroup) -> None:
        members = self.links.linked_members(op.user_ids)
        existing = self.matcher.unlinked_group(op.group_id)
        if existing is not None:  # our own tag from an earlier life of the state database
            scim_id = existing["id"]
            ops: list[dict[str, Any]] = []
            if existing.get("displayName") != op.display_name:
                ops.append(rename_operation(op.display_name))
            if members:
                ops.append(add_members_operation(members.values()))
            if ops:
                await self.target.patch_group(scim_id, ops)
            outcome = Outcome.ADOPTED
        else:
            resource = group_resource(op.display_name, op.group_id, members.values())
            scim_id, outcome = (await self.target.create_group(resource))["id"], Outcome.CREATED
        self.links.link_group(op.group_id, scim_id, op.display_name, members)
        self.tally.outcome(op, outcome)

    async def create_group_empty(self, op: CreateGroup, exc: ScimError) -> None:
        """Learnster refused the members in a tag's POST: they must not keep the tag from
        existing. Create it empty and fail the operation, so the next cycle adds the members
        in batches."""
        members = self.links.linked_members(op.user_ids)
        adopting = self.matcher.unlinked_group(op.group_id) is not None
        if adopting or not members or exc.status != 400:
            raise exc
        created = await self.target.create_group(group_resource(op.display_name, op.group_id))
        self.links.link_group(op.group_id, created["id"], op.display_name)
        detail = f"tag created without its members: {exc.detail or exc}"
        raise RejectedError(detail, status=exc.status, detail=detail) from None

    async def rename_group(self, op: RenameGroup) -> None:
        linked = self.links.groups.get(op.group_id)
        if linked is None:
            return
        await self.target.patch_group(linked.scim_id, [rename_operation(op.after)])
        self.links.rename_group(op.group_id, op.after)
        self.tally.outcome(op, Outcome.UPDATED)

    async def add_members(self, op: AddMembers) -> None:
        linked = self.links.groups.get(op.group_id)
        present = self.links.linked_members(op.user_ids) if linked is not None else {}
        if linked is None or not present:
            self.tally.outcome(op, Outcome.SKIPPED)  # the group's create failed: next cycle
            return
        await self.target.patch_group(linked.scim_id, [add_members_operation(present.values())])
        self.links.add_members(op.group_id, present)
        self.tally.outcome(op, Outcome.UPDATED)

    async def remove_members(self, op: RemoveMembers) -> None:
        linked = self.links.groups.get(op.group_id)
        if linked is None:
            return
        ids = [sid for uid in op.user_ids if (sid := self.links.resolve(uid)) is not None]
        if ids:
            await self.target.patch_group(linked.scim_id, [remove_member_operation(s) for s in ids])
        self.links.remove_members(op.group_id, op.user_ids)
        self.tally.outcome(op, Outcome.UPDATED)

    async def group_gone(
        self, op: RenameGroup | AddMembers | RemoveMembers, exc: ScimError
    ) -> None:
        """The tag was deleted in Learnster: forget it, the next cycle creates it again."""
        self.links.forget_group(op.group_id)

    async def delete_group(self, op: DeleteGroup) -> None:
        linked = self.links.groups.get(op.group_id)
        if linked is None:
            return
        await self.target.delete_group(linked.scim_id)
        self.group_deleted(op)

    def group_deleted(self, op: DeleteGroup) -> None:
        self.links.forget_group(op.group_id)
        self.tally.outcome(op, Outcome.DELETED)

    async def group_already_deleted(self, op: DeleteGroup, exc: ScimError) -> None:
        self.group_deleted(op)

    # -- dispatch ------------------------------------------------------------------------------

    async def dispatch(self, op: Operation, *, inner: bool = False) -> None:
        """Apply one operation; a failure fails this object alone (StopCycle ends the cycle).

        ``inner``: part of another operation's recovery, whose failure that one reports.
        """
        handling = HANDLING[op.kind]
        try:
            try:
                await handling.send(self, op)
            except ScimError as exc:
                recover = handling.recover.get(exc.recovery)
                if recover is None:
                    raise
                await recover(self, op, exc)
        except ScimError as exc:
            if inner:
                raise
            self.tally.fail(op, exc)


Send = Callable[[Handlers, Any], Awaitable[None]]
Recover = Callable[[Handlers, Any, ScimError], Awaitable[None]]


@dataclass(frozen=True)
class Handling:
    """How one kind of operation is sent, and what a failed request's recovery means for it."""

    send: Send
    recover: Mapping[Recovery, Recover] = field(default_factory=dict)


HANDLING: Mapping[OperationKind, Handling] = {
    OperationKind.CREATE_USER: Handling(
        Handlers.create_user, {Recovery.ADOPT: Handlers.adopt_after_conflict}
    ),
    OperationKind.UPDATE_USER: Handling(
        Handlers.update_user, {Recovery.FORGET_LINK: Handlers.recreate_user}
    ),
    OperationKind.DELETE_USER: Handling(
        Handlers.delete_user, {Recovery.FORGET_LINK: Handlers.user_already_deleted}
    ),
    OperationKind.CREATE_GROUP: Handling(
        Handlers.create_group, {Recovery.FAIL_OBJECT: Handlers.create_group_empty}
    ),
    OperationKind.RENAME_GROUP: Handling(
        Handlers.rename_group, {Recovery.FORGET_LINK: Handlers.group_gone}
    ),
    OperationKind.ADD_MEMBERS: Handling(
        Handlers.add_members, {Recovery.FORGET_LINK: Handlers.group_gone}
    ),
    OperationKind.REMOVE_MEMBERS: Handling(
        Handlers.remove_members, {Recovery.FORGET_LINK: Handlers.group_gone}
    ),
    OperationKind.DELETE_GROUP: Handling(
        Handlers.delete_group, {Recovery.FORGET_LINK: Handlers.group_already_deleted}
    ),
}
