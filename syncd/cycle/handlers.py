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
from syncd.core.mapping import MANAGER, USER_NAME, learnster_keeps
from syncd.core.messages import (
    add_members_operation,
    build_user_resource,
    flatten_user_resource,
    group_resource,
    is_same_tag_name,
    member_patches,
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
from syncd.cycle.context import about
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
        batch_size: int = 100,
    ) -> None:
        self.target = target
        self.links = links
        self.matcher = matcher
        self.tally = tally
        self._intents = intents
        self.batch_size = batch_size

    # -- users ---------------------------------------------------------------------------------

    async def create_user(self, op: CreateUser) -> None:
        attrs = as_dict(op.attrs)
        user_name = str(attrs[USER_NAME])
        if op.user_id in self._intents and not self.matcher.listed:
            log.info(
                "%s: a create was interrupted before; matching it first",
                user_name,
                extra=about(op.user_id, op.kind),
            )
        match = await self.matcher.user(attrs)
        if match is not None:
            await self._adopt_user(op, attrs, match.scim_id, match.held)
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
        await self._adopt_user(op, attrs, str(existing["id"]), flatten_user_resource(existing))

    async def _adopt_user(
        self, op: CreateUser, attrs: dict[str, Any], scim_id: str, current: dict[str, Any]
    ) -> None:
        """Link a user Learnster already has and update it where it differs from the mapping.

        Compared with what Learnster keeps of the mapped values (its first phone number only),
        so a takeover does not PATCH what Learnster would drop again.
        """
        if current.get(MANAGER):
            # Compare managers by Graph id: translate Learnster's manager id back if we know it.
            current[MANAGER] = self.links.graph_id_of(current[MANAGER]) or current[MANAGER]
        wanted = learnster_keeps(attrs)
        ops = user_patch_operations(current, wanted, self.links.resolve, remove_missing=False)
        sent = self._acknowledged(current, attrs)
        if ops:
            try:
                await self.target.patch_user(scim_id, ops)
            except ConflictError as exc:  # not the create's conflict: adopting failed
                raise RejectedError(str(exc), status=exc.status, detail=exc.detail) from exc
        self.links.record_user(op.user_id, LedgerUser(scim_id, sent), adopted=True)
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
        existing = self.matcher.unlinked_group(op.group_id)
        if existing is not None:  # a tag Entra (or an earlier state database) made
            await self._adopt_group(op, existing)
            return
        members = self.links.linked_members(op.user_ids)
        resource = group_resource(op.display_name, op.group_id, members.values())
        created = await self.target.create_group(resource)
        self.links.link_group(op.group_id, created["id"], op.display_name, members, created=True)
        self.tally.outcome(op, Outcome.CREATED)

    async def _adopt_group(self, op: CreateGroup, existing: Mapping[str, Any]) -> None:
        """Link a tag Learnster holds and make it match: its members are read once, and only
        the difference is sent. Members no directory user is linked to are left alone."""
        scim_id = str(existing["id"])
        held = await self.target.group_members(scim_id)
        known = self.links.graph_ids_of(held)
        if len(known) < len(held):
            log.info(
                "tag %s: %d members that are no linked directory user are left as they are",
                op.display_name,
                len(held) - len(known),
                extra=about(op.group_id, op.kind),
            )
        name = str(existing.get("displayName") or "")
        same_name = is_same_tag_name(name, op.display_name)
        self.links.link_group(
            op.group_id, scim_id, op.display_name if same_name else name, known.values()
        )
        wanted = self.links.linked_members(op.members or op.user_ids)
        current = set(known.values())
        adds = [wanted[g] for g in sorted(wanted.keys() - current)]
        removes = sorted(current - wanted.keys())
        patches = member_patches(
            adds, [self.links.resolve(g) or "" for g in removes], self.batch_size
        )
        if not same_name:
            patches = [[rename_operation(op.display_name)], *patches]
        for patch in patches:
            await self.target.patch_group(scim_id, patch)
            self._record_group_patch(op.group_id, patch, wanted, removes)
        self.tally.outcome(op, Outcome.ADOPTED if patches else Outcome.UNCHANGED)

    def _record_group_patch(
        self,
        graph_id: str,
        patch: list[dict[str, Any]],
        wanted: Mapping[str, str],
        removes: list[str],
    ) -> None:
        """Into the ledger, what one acknowledged PATCH of an adopted tag did."""
        by_scim = {sid: gid for gid, sid in wanted.items()}
        removed_by_scim = {self.links.resolve(g): g for g in removes}
        for operation in patch:
            if operation["path"] == "displayName":
                self.links.rename_group(graph_id, operation["value"])
            elif operation["op"] == "add":
                self.links.add_members(graph_id, [by_scim[m["value"]] for m in operation["value"]])
            else:
                scim_id = operation["path"].split('"')[1]
                self.links.remove_members(graph_id, [removed_by_scim[scim_id]])

    async def create_group_empty(self, op: CreateGroup, exc: ScimError) -> None:
        """Learnster refused the members in a tag's POST: they must not keep the tag from
        existing. Create it empty and fail the operation, so the next cycle adds the members
        in batches."""
        members = self.links.linked_members(op.user_ids)
        adopting = self.matcher.unlinked_group(op.group_id) is not None
        if adopting or not members or exc.status != 400:
            raise exc
        created = await self.target.create_group(group_resource(op.display_name, op.group_id))
        self.links.link_group(op.group_id, created["id"], op.display_name, created=True)
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
        # Those the tag holds already (it was adopted in this cycle) are not sent again.
        present = {g: s for g, s in present.items() if g not in linked.members}
        if not present:
            self.tally.outcome(op, Outcome.UNCHANGED)
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
