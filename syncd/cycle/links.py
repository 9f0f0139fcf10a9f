"""Links: the Learnster ids the apply stage needs, kept in step with the ledger it writes.

Only ids are held in memory, never attributes (100,000 users' attributes would cost ~150 MB).
Eager (a whole-directory plan): every user's id is read up front. Lazy (a small delta): each
id is read when first needed; see docs/ARCHITECTURE.md, "Fast paths".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from syncd.core.ledger import LedgerGroup, LedgerUser
from syncd.core.mapping import MANAGER
from syncd.core.operations import (
    AddMembers,
    CreateGroup,
    CreateUser,
    Operation,
    RemoveMembers,
    UpdateUser,
)
from syncd.ports import LedgerRepository


class Links:
    """Graph id <-> Learnster id of users and groups, as acknowledged; every write goes through."""

    def __init__(
        self,
        ledger: LedgerRepository,
        groups: Mapping[str, LedgerGroup] | None = None,
        *,
        lazy: bool = False,
    ) -> None:
        self.ledger = ledger
        self.lazy = lazy
        self._scim_ids: dict[str, str] = {} if lazy else ledger.scim_ids()
        self.groups: dict[str, LedgerGroup] = (
            dict(groups) if groups is not None else ledger.groups()
        )
        self._linked_scim_ids: set[str] | None = None if lazy else set(self._scim_ids.values())
        self._graph_of_scim: dict[str, str] | None = None  # built on the first adoption
        self._created_groups: set[str] = set()  # tags this cycle created (link_group)
        # Ledger attributes (canonical JSON) of the current phase's users, read in one go.
        self._acknowledged_json: dict[str, str] = {}

    # -- users ---------------------------------------------------------------------------------

    def prefetch(self, phase: Iterable[Operation]) -> None:
        """Read the ledger rows a phase needs in a few queries, not one or two per operation."""
        updated: list[str] = []
        referenced: set[str] = set()
        for op in phase:
            if isinstance(op, UpdateUser):
                updated.append(op.user_id)
            if isinstance(op, CreateUser | UpdateUser):
                attrs = op.attrs if isinstance(op, CreateUser) else op.after
                if isinstance(manager := attrs.get(MANAGER), str):
                    referenced.add(manager)
            elif isinstance(op, AddMembers | RemoveMembers | CreateGroup):
                referenced.update(op.user_ids)
        self._acknowledged_json = {}
        if updated or (self.lazy and referenced):
            wanted = [*updated, *(referenced - self._scim_ids.keys())] if self.lazy else updated
            for graph_id, entry in self.ledger.users_for(wanted).items():
                self._scim_ids.setdefault(graph_id, entry.scim_id)
                self._acknowledged_json[graph_id] = entry.attrs_json

    def holds(self, graph_id: str, attrs: Mapping[str, Any]) -> bool:
        """Whether the ledger's attributes for ``graph_id`` are exactly ``attrs``."""
        known = self._acknowledged_json.get(graph_id)
        if known is not None:
            return bool(json.loads(known) == dict(attrs))
        return self.ledger.attrs_of(graph_id) == dict(attrs)

    def resolve(self, graph_id: str) -> str | None:
        """The Learnster id of a linked user; None when Learnster does not have them."""
        scim_id = self._scim_ids.get(graph_id)
        if scim_id is None and self.lazy:
            scim_id = self.ledger.scim_id_of(graph_id)
            if scim_id is not None:
                self._scim_ids[graph_id] = scim_id
        return scim_id

    def is_linked(self, scim_id: str) -> bool:
        """Whether a Learnster user is linked to some directory user already."""
        if self._linked_scim_ids is not None:
            return scim_id in self._linked_scim_ids
        return scim_id in self._scim_ids.values() or self.ledger.graph_id_of(scim_id) is not None

    def graph_id_of(self, scim_id: str) -> str | None:
        """The directory user a Learnster id is linked to, if any."""
        if self.lazy:
            return self.ledger.graph_id_of(scim_id)
        if self._graph_of_scim is None:
            self._graph_of_scim = {sid: gid for gid, sid in self._scim_ids.items()}
        return self._graph_of_scim.get(scim_id)

    def graph_ids_of(self, scim_ids: Iterable[str]) -> dict[str, str]:
        """Learnster id -> directory user, for those of ``scim_ids`` that are linked."""
        if self.lazy:
            return self.ledger.graph_ids_of(scim_ids)
        if self._graph_of_scim is None:
            self._graph_of_scim = {sid: gid for gid, sid in self._scim_ids.items()}
        known = self._graph_of_scim
        return {sid: known[sid] for sid in scim_ids if sid in known}

    def record_user(self, graph_id: str, entry: LedgerUser, *, adopted: bool = False) -> None:
        """Learnster acknowledged ``entry`` for ``graph_id``: into the ledger, now."""
        self._scim_ids[graph_id] = entry.scim_id
        if graph_id in self._acknowledged_json:
            self._acknowledged_json[graph_id] = entry.attrs_json
        if self._linked_scim_ids is not None:
            self._linked_scim_ids.add(entry.scim_id)
        if self._graph_of_scim is not None:
            self._graph_of_scim[entry.scim_id] = graph_id
        self.ledger.put_user(graph_id, entry, adopted=adopted)

    def forget_user(self, graph_id: str) -> None:
        """The user is gone from Learnster: forget the link and their tag memberships."""
        scim_id = self._scim_ids.pop(graph_id, None)
        self._acknowledged_json.pop(graph_id, None)
        if scim_id is not None and self._linked_scim_ids is not None:
            self._linked_scim_ids.discard(scim_id)
        self.ledger.drop_user(graph_id)
        for gid, group in list(self.groups.items()):
            if graph_id in group.members:
                self.groups[gid] = LedgerGroup(
                    group.scim_id, group.display_name, group.members - {graph_id}
                )

    def linked_members(self, user_ids: Iterable[str]) -> dict[str, str]:
        """Graph id -> Learnster id of the users that exist in Learnster; those whose own
        create failed are left out, and a later cycle adds them."""
        return {uid: sid for uid in user_ids if (sid := self.resolve(uid)) is not None}

    # -- groups --------------------------------------------------------------------------------

    def link_group(
        self,
        graph_id: str,
        scim_id: str,
        display_name: str,
        members: Iterable[str] = (),
        *,
        created: bool = False,
    ) -> None:
        """A tag was created or adopted with these members (Graph ids).

        The members of a tag ``created`` in this cycle are the ledger's alone: in memory they
        would only be compared with the tag's later batches, which the planner made disjoint
        (500,000 memberships held ~40 MB of the 100,000-user peak, make bench).
        """
        member_set = frozenset(members)
        held = frozenset() if created else member_set
        self.groups[graph_id] = LedgerGroup(scim_id, display_name, held)
        if created:
            self._created_groups.add(graph_id)
        self.ledger.put_group(graph_id, scim_id, display_name)
        if member_set:
            self.ledger.add_members(graph_id, member_set)

    def rename_group(self, graph_id: str, display_name: str) -> None:
        linked = self.groups[graph_id]
        self.groups[graph_id] = LedgerGroup(linked.scim_id, display_name, linked.members)
        self.ledger.put_group(graph_id, linked.scim_id, display_name)

    def add_members(self, graph_id: str, user_ids: Iterable[str]) -> None:
        added = set(user_ids)
        if graph_id not in self._created_groups:
            current = self.groups[graph_id]
            self.groups[graph_id] = LedgerGroup(
                current.scim_id, current.display_name, current.members | added
            )
        self.ledger.add_members(graph_id, added)

    def remove_members(self, graph_id: str, user_ids: Iterable[str]) -> None:
        removed = tuple(user_ids)
        current = self.groups[graph_id]
        self.groups[graph_id] = LedgerGroup(
            current.scim_id, current.display_name, current.members - set(removed)
        )
        self.ledger.remove_members(graph_id, removed)

    def forget_group(self, graph_id: str) -> None:
        """The tag is gone from Learnster (deleted by syncd or behind its back)."""
        self.groups.pop(graph_id, None)
        self.ledger.drop_group(graph_id)
