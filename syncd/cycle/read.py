"""The read stage: Graph's delta rounds (or a full read) folded over the stored snapshot."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from syncd.core.records import (
    LEGACY_USER_SELECT,
    USER_SELECT,
    Assignments,
    DeltaRound,
    GroupSnapshot,
    Problem,
    UserSnapshot,
)
from syncd.core.snapshot import FullUserRound, fold_groups, fold_users
from syncd.errors import DeltaTokenExpired, GraphReadError
from syncd.ports import DirectorySource, SnapshotRepository

log = logging.getLogger("syncd.cycle")

USERS = "users"
GROUPS = "groups"


@dataclass
class DirectoryRead:
    """The directory after this cycle's read, and how it was read."""

    users: UserSnapshot
    groups: GroupSnapshot
    links: dict[str, str]  # the delta links of the rounds that completed
    full: bool
    problems: list[Problem]
    changed_users: set[str]
    errors: list[GraphReadError] = field(default_factory=list)  # non-empty: the read was partial
    quiet: bool = False  # nothing changed, and the last cycle had left Learnster in sync
    incremental: bool = False  # users/groups hold only the records this delta touched
    previous_users: UserSnapshot = field(default_factory=dict)  # their state before it
    previous_groups: GroupSnapshot = field(default_factory=dict)
    # What the users delta link stored with this read selects (None: it is the old one).
    selection: tuple[str, ...] | None = None
    notes: list[str] = field(default_factory=list)  # for people: why the read was as it was
    assignments: Assignments | None = None  # mode assigned: who the app is assigned to

    @property
    def complete(self) -> bool:
        return not self.errors


async def read_directory(
    source: DirectorySource,
    snapshot: SnapshotRepository,
    *,
    full: bool,
    select: tuple[str, ...] = USER_SELECT,
    application: str = "",
    may_skip: bool = False,
    slice_only: bool = False,
) -> DirectoryRead:
    """One read of users and groups (delta, or full when asked or when tokens expired).

    A round that fails part-way still contributes the objects it read (creates and updates
    may go ahead), but nothing it lacks counts as removed and its delta link is not advanced.
    ``select``: the user properties to read; a delta link that selects less is not followed
    (Graph's delta keeps its first selection), everything is read again.
    ``may_skip``: when the delta rounds bring nothing, the snapshot is not even loaded.
    ``slice_only``: load only the snapshot records the delta touches (incremental planning).
    ``application``: also read who this app is assigned to (mode assigned), every cycle.
    """
    links = {} if full else snapshot.delta_links()
    notes = _selection_notes(snapshot, links, select)
    if notes:
        links = {}
    is_full = full or USERS not in links or GROUPS not in links
    streamed = FullUserRound() if is_full else None
    try:
        rounds, assignments = await _read_rounds(
            source, links, is_full, streamed, select, application
        )
    except DeltaTokenExpired as expired:
        log.warning("Graph's delta link for %s cannot be used: reading everything again", expired)
        return await read_directory(
            source, snapshot, full=True, select=select, application=application
        )
    errors: list[GraphReadError] = []
    for resource, round_ in rounds.items():
        if round_.error is not None:
            log.error("reading %s from Graph failed: %s", resource, round_.error)
            errors.append(round_.error)
            round_.removed.clear()  # never remove anyone on a partial read
    links_after = {r: rounds[r].delta_link for r in rounds if rounds[r].complete}
    quiet = (
        streamed is None
        and not errors
        and not any(r.objects or r.removed for r in rounds.values())
        and (assignments is None or assignments == snapshot.assignments())
    )
    if may_skip and quiet and not is_full:
        return DirectoryRead({}, {}, links_after, False, [], set(), quiet=True)
    incremental = slice_only and not is_full and not errors
    read = _fold(snapshot, rounds, streamed, incremental=incremental)
    read.links, read.errors, read.notes, read.assignments = links_after, errors, notes, assignments
    read.selection = select if is_full and rounds[USERS].complete else None
    return read


def _selection_notes(
    snapshot: SnapshotRepository, links: dict[str, str], select: tuple[str, ...]
) -> list[str]:
    """Why the stored delta links cannot be followed for ``select`` (no note: they can)."""
    if USERS not in links:
        return []
    stored = snapshot.user_selection() or LEGACY_USER_SELECT
    missing = sorted(set(select) - set(stored))
    if not missing:
        return []
    note = (
        "reading everything again: the configuration reads user properties the stored "
        f"delta links do not ({', '.join(missing)}), as Entra's restart does"
    )
    log.warning("%s", note)
    return [note]


def _fold(
    snapshot: SnapshotRepository,
    rounds: dict[str, DeltaRound],
    streamed: FullUserRound | None,
    *,
    incremental: bool,
) -> DirectoryRead:
    """The rounds folded over the stored snapshot (only the records they touch, if
    ``incremental``)."""
    if incremental:
        # Only the records this delta touches: the rest of the snapshot stays on disk.
        previous_users = snapshot.users([*rounds[USERS].objects, *rounds[USERS].removed])
        previous_groups = snapshot.groups([*rounds[GROUPS].objects, *rounds[GROUPS].removed])
    else:
        previous_users, previous_groups = snapshot.load()
    if streamed is not None:
        users = streamed.finish(previous_users, complete=rounds[USERS].complete)
        user_problems = streamed.problems
        changed_users = set(streamed.users) | streamed.failed
    else:
        folded = fold_users(previous_users, rounds[USERS].objects, rounds[USERS].removed)
        users, user_problems = folded.snapshot, folded.problems
        changed_users = set(rounds[USERS].objects)
    groups = fold_groups(
        previous_groups,
        rounds[GROUPS].objects,
        rounds[GROUPS].removed,
        full=streamed is not None and rounds[GROUPS].complete,
    )
    return DirectoryRead(
        users=users,
        groups=groups.snapshot,
        links={},
        full=streamed is not None,
        problems=[*user_problems, *groups.problems],
        changed_users=changed_users,
        incremental=incremental,
        previous_users=previous_users if incremental else {},
        previous_groups=previous_groups if incremental else {},
    )


async def _read_rounds(
    source: DirectorySource,
    links: dict[str, str],
    is_full: bool,
    streamed: FullUserRound | None,
    select: tuple[str, ...],
    application: str,
) -> tuple[dict[str, DeltaRound], Assignments | None]:
    """Users, groups and the app's assignments at the same time: a small delta cycle waits one
    Graph round trip less.

    Raises DeltaTokenExpired (naming the resource) when either round's token expired.
    """

    async def read_round(resource: str) -> DeltaRound | DeltaTokenExpired:
        link = None if is_full else links.get(resource)
        on_object = streamed.add if streamed is not None and resource == USERS else None
        try:
            return await source.delta(resource, link, on_object, select)
        except DeltaTokenExpired as exc:
            return exc

    try:
        async with asyncio.TaskGroup() as group:
            tasks = {r: group.create_task(read_round(r)) for r in (USERS, GROUPS)}
            assigned = group.create_task(source.assignments(application)) if application else None
    except BaseExceptionGroup as failed:  # StopCycle: as if read one by one
        raise failed.exceptions[0] from None
    rounds: dict[str, DeltaRound] = {}
    for resource, task in tasks.items():
        outcome = task.result()
        if isinstance(outcome, DeltaTokenExpired):
            raise DeltaTokenExpired(f"{resource} ({outcome})") from outcome
        rounds[resource] = outcome
    return rounds, assigned.result() if assigned is not None else None
