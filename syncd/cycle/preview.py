"""What a plan's creates will meet in Learnster: adopted by userName, e-mail or externalId, or created.

``syncd plan`` (a dry run) reads Learnster for this, and only this, so that an administrator
sees a takeover before it happens; nothing is written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from syncd.core.attrs import as_dict
from syncd.core.operations import CreateGroup, CreateUser, Plan
from syncd.cycle.links import Links
from syncd.cycle.matching import MATCH_BY_LISTING_ABOVE, Matcher
from syncd.errors import AlreadyLinked, AmbiguousMatch
from syncd.ports import LedgerRepository, ScimTarget

ADOPT_BY = "adopt by {}"
CREATE = "create"
AMBIGUOUS = "ambiguous: adopt neither"
LINKED_ELSEWHERE = "linked to another directory user"


async def preview_matching(
    the_plan: Plan,
    open_target: Callable[[], ScimTarget],
    ledger: LedgerRepository,
    match_by: tuple[str, ...],
) -> dict[str, str]:
    """Object id -> how each create of ``the_plan`` will be matched (empty: nothing to match)."""
    creates = [op for op in the_plan.operations if isinstance(op, CreateUser)]
    tags = [op for op in the_plan.operations if isinstance(op, CreateGroup)]
    if not creates and not tags:
        return {}
    target = open_target()
    try:
        links = Links(ledger, lazy=True)
        matcher = Matcher(target, links, match_by)
        if len(creates) > MATCH_BY_LISTING_ABOVE:
            await matcher.list_users()
        if tags:
            await matcher.list_groups(g.scim_id for g in ledger.groups().values())
        matching: dict[str, str] = {}
        for op in creates:
            matching[op.user_id] = await _user_match(matcher, op)
        for tag in tags:
            found = matcher.unlinked_group(tag.group_id) is not None
            matching[tag.group_id] = ADOPT_BY.format("externalId") if found else CREATE
        return matching
    finally:
        await target.aclose()


async def _user_match(matcher: Matcher, op: CreateUser) -> str:
    try:
        match = await matcher.user(as_dict(op.attrs))
    except AmbiguousMatch:
        return AMBIGUOUS
    except AlreadyLinked:
        return LINKED_ELSEWHERE
    return CREATE if match is None else ADOPT_BY.format(match.by)


def matching_counts(matching: dict[str, str], users: set[str]) -> dict[str, dict[str, int]]:
    """How many users and tags go each way, for the plan's summary."""
    counts: dict[str, Counter[str]] = {"users": Counter(), "tags": Counter()}
    for object_id, how in matching.items():
        counts["users" if object_id in users else "tags"][how] += 1
    return {kind: dict(sorted(c.items())) for kind, c in counts.items() if c}
