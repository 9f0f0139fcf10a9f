"""Matching before create: what Learnster already holds that a directory user or group is.

Users are matched by the attributes of ``[sync] match_by`` in order, like Entra's matching
precedence: by userName, then (optionally) by work e-mail. A match that is not unique adopts
no one; a Learnster user linked to another directory user is never taken over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from syncd.core.attrs import PackedAttrs
from syncd.core.mapping import USER_NAME, WORK_EMAIL
from syncd.core.messages import flatten_user_resource, work_email_key
from syncd.core.records import user_name_key
from syncd.cycle.links import Links
from syncd.errors import AlreadyLinked, AmbiguousMatch
from syncd.ports import ScimTarget

# Above this many creates, list Learnster's users once instead of one lookup per create.
MATCH_BY_LISTING_ABOVE = 20
BY_USER_NAME = "userName"
BY_EMAILS = "emails"


@dataclass(frozen=True)
class Match:
    """A Learnster user a directory user is, and which attribute said so."""

    scim_id: str
    held: dict[str, Any]  # what Learnster holds, flat (flatten_user_resource)
    by: str  # "userName" | "emails"


class _Listed(NamedTuple):
    """A listed Learnster user, kept small: 100,000 of them as parsed resources took ~400 MB,
    their flat attributes packed (keys shared between users) a tenth of that."""

    scim_id: str
    flat: PackedAttrs  # flatten_user_resource

    @classmethod
    def of(cls, resource: Mapping[str, Any]) -> _Listed:
        return cls(str(resource["id"]), PackedAttrs(flatten_user_resource(resource)))


class Matcher:
    """Finds the Learnster user or tag an operation is about, by listing once or looking up."""

    def __init__(
        self, target: ScimTarget, links: Links, match_by: Sequence[str] = (BY_USER_NAME,)
    ) -> None:
        self._target = target
        self._links = links
        self._match_by = tuple(match_by)
        self._by_name: dict[str, list[_Listed]] | None = None
        self._by_email: dict[str, list[_Listed]] = {}
        self._unlinked_groups: dict[str, dict[str, Any]] = {}

    @property
    def listed(self) -> bool:
        """Whether Learnster's users were listed (no lookup per create)."""
        return self._by_name is not None

    async def list_users(self) -> None:
        self._by_name, self._by_email = {}, {}
        async for resource in self._target.iter_users():
            listed = _Listed.of(resource)
            name = resource.get("userName")
            if isinstance(name, str):
                self._by_name.setdefault(user_name_key(name), []).append(listed)
            email = work_email_key(resource)
            if email is not None and BY_EMAILS in self._match_by:
                self._by_email.setdefault(email, []).append(listed)

    async def list_groups(self, linked_scim_ids: Iterable[str]) -> None:
        """Learnster's tags that no directory group is linked to, by externalId."""
        linked = set(linked_scim_ids)
        self._unlinked_groups = {}
        async for resource in self._target.iter_groups():
            external = resource.get("externalId")
            if isinstance(external, str) and resource["id"] not in linked:
                self._unlinked_groups[external] = resource

    async def user(self, attrs: Mapping[str, Any]) -> Match | None:
        """The Learnster user the flat user ``attrs`` is, by the first attribute that finds
        one; None: create. Two candidates for one attribute adopt neither (AmbiguousMatch)."""
        user_name = str(attrs[USER_NAME])
        for attribute in self._match_by:
            if attribute == BY_USER_NAME:
                found = await self._by_user_name(user_name)
            else:
                email = attrs.get(WORK_EMAIL)
                if not isinstance(email, str) or not email:
                    continue
                # Linked ones belong to another directory user: not candidates.
                found = [r for r in await self._by_work_email(email) if not self._linked(r)]
            if len(found) > 1:
                ids = ", ".join(sorted(r.scim_id for r in found))
                raise AmbiguousMatch(
                    f"{user_name} matches {len(found)} Learnster users by {attribute} ({ids}): "
                    "adopted neither, created nothing",
                    detail=f"matches {len(found)} Learnster users by {attribute} ({ids}): "
                    "adopted neither, created nothing",
                )
            if found:
                if attribute == BY_USER_NAME and self._linked(found[0]):
                    raise AlreadyLinked(
                        f"Learnster user {user_name!r} is already linked to another directory user",
                        status=409,
                        detail=f"userName {user_name!r} is already linked to another directory "
                        "user",
                    )
                return Match(found[0].scim_id, found[0].flat.unpack(), attribute)
        return None

    def _linked(self, listed: _Listed) -> bool:
        return self._links.is_linked(listed.scim_id)

    async def _by_user_name(self, user_name: str) -> list[_Listed]:
        if self._by_name is not None:
            return self._by_name.get(user_name_key(user_name), [])
        found = await self._target.find_user(user_name)
        return [_Listed.of(found)] if found is not None else []

    async def _by_work_email(self, email: str) -> list[_Listed]:
        if self._by_name is not None:
            return self._by_email.get(user_name_key(email), [])
        return [_Listed.of(r) for r in await self._target.find_users_by_email(email)]

    def unlinked_group(self, graph_id: str) -> dict[str, Any] | None:
        """A tag whose externalId is this group's id, that no directory group is linked to."""
        return self._unlinked_groups.get(graph_id)
