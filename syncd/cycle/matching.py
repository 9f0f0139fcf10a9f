"""Matching before create: what Learnster already holds that a directory user or group is."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from syncd.core.records import user_name_key
from syncd.cycle.links import Links
from syncd.errors import AlreadyLinked
from syncd.ports import ScimTarget

# Above this many creates, list Learnster's users once instead of one lookup per create.
MATCH_BY_LISTING_ABOVE = 20


class Matcher:
    """Finds the Learnster user or tag an operation is about, by listing once or looking up."""

    def __init__(self, target: ScimTarget, links: Links) -> None:
        self._target = target
        self._links = links
        self._users_by_name: dict[str, dict[str, Any]] | None = None
        self._unlinked_groups: dict[str, dict[str, Any]] = {}

    @property
    def listed(self) -> bool:
        """Whether Learnster's users were listed (no lookup per create)."""
        return self._users_by_name is not None

    async def list_users(self) -> None:
        self._users_by_name = {}
        async for resource in self._target.iter_users():
            name = resource.get("userName")
            if isinstance(name, str):
                self._users_by_name[user_name_key(name)] = resource

    async def list_groups(self, linked_scim_ids: Iterable[str]) -> None:
        """Learnster's tags that no directory group is linked to, by externalId."""
        linked = set(linked_scim_ids)
        self._unlinked_groups = {}
        async for resource in self._target.iter_groups():
            external = resource.get("externalId")
            if isinstance(external, str) and resource["id"] not in linked:
                self._unlinked_groups[external] = resource

    async def user(self, user_name: str) -> dict[str, Any] | None:
        """The Learnster user with this userName, if any; one linked elsewhere is refused."""
        if self._users_by_name is not None:
            found = self._users_by_name.get(user_name_key(user_name))
        else:
            found = await self._target.find_user(user_name)
        if found is not None and self._links.is_linked(found["id"]):
            raise AlreadyLinked(
                f"Learnster user {user_name!r} is already linked to another directory user",
                status=409,
                detail=f"userName {user_name!r} is already linked to another directory user",
            )
        return found

    def unlinked_group(self, graph_id: str) -> dict[str, Any] | None:
        """A tag whose externalId is this group's id, that no directory group is linked to."""
        return self._unlinked_groups.get(graph_id)
