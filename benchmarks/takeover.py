"""``make bench BENCH_ARGS=--takeover``: syncd takes over from Entra's push provisioning.

After ``run.py``'s initial cycle has filled Learnster as Entra's push would leave it (every user
and tag, with the same mapping: Learnster's documented table), the steps here:

1. set that cycle's state database aside (``push-state/``): a new installation starts empty;
2. drift the directory since push stopped, through the fake Graph's control API: new job titles,
   hires (some with a manager, one of them managed by another hire) who join tags, a renamed tag,
   members added to one tag and removed from another;
3. ``takeover``: ``syncd sync`` with the new, empty state database;
4. ``takeover-again``: one more cycle with that database, which should send nothing.

The expected requests follow from the drift applied, never from what a syncd sent: checks compare
them kind by kind, and what Learnster holds afterwards, and say where they differ, without
failing the run.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from benchmarks.tenant import LEARNSTER_TOKEN, control_url, http_json, list_users, retitle
from syncd.adapters.scim import LIST_PAGE_SIZE
from syncd.config import SyncConfig

if TYPE_CHECKING:
    from benchmarks.run import RunResult

    Cycle = Callable[[str, str], RunResult]  # run.py: one syncd sync (name, description)

# The drift since push stopped: shares of --users, but at least a 1,000-user tenant's figures.
TITLE_SHARE, MIN_TITLES = 0.02, 20
HIRE_SHARE, MIN_HIRES = 0.005, 5
MEMBERS_ADDED, MEMBERS_REMOVED = 3, 2  # to one tag, from another
HIRE_TAGS = 3  # hire i joins 1 + i % HIRE_TAGS tags
HIRE_DOMAIN = "contoso.example"  # run.py's tenant
FAKE_PAGE_MAX = 1000  # python -m syncd.fakes learnster --page-size-max, by default
PAGE = min(LIST_PAGE_SIZE, FAKE_PAGE_MAX)  # users or tags per page of syncd's listings
BATCH = SyncConfig().member_batch_size  # the bench's syncd.toml keeps the default
WRITES = ("POST /Users", "PATCH /Users", "POST /Groups", "PATCH /Groups")  # always shown
PUSH_STATE = "push-state"  # where the initial cycle's state database is set aside

err = Console(stderr=True, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------------- push's Learnster


@dataclass
class Pushed:
    """What Learnster holds once the initial cycle filled it (from that cycle's ledger)."""

    database: Path  # that ledger, set aside
    users: dict[str, str]  # Graph id -> Learnster id
    tags: dict[str, str]  # Graph id -> name
    sizes: dict[str, int]  # tag -> how many members

    def members(self, gid: str) -> set[str]:
        """The members of a tag (Graph ids), read when needed: 500,000 at 100,000 users."""
        with contextlib.closing(sqlite3.connect(self.database)) as db:
            query = "SELECT user_id FROM ledger_member WHERE group_id = ?"
            return {user_id for (user_id,) in db.execute(query, (gid,))}


def set_aside(database: Path) -> Path:
    """Move the state database and its companions (-wal, -shm, .lock) to ``push-state/``.

    Returns the database's new path; nothing is left where syncd's config points.
    """
    aside = database.parent / PUSH_STATE
    aside.mkdir()
    for path in database.parent.glob(f"{database.name}*"):
        path.rename(aside / path.name)
    return aside / database.name


def read_pushed(database: Path) -> Pushed:
    with contextlib.closing(sqlite3.connect(database)) as db:
        users = dict(db.execute("SELECT graph_id, scim_id FROM ledger_user"))
        tags = dict(db.execute("SELECT graph_id, display_name FROM ledger_group"))
        query = "SELECT group_id, count(*) FROM ledger_member GROUP BY group_id"
        sizes = dict.fromkeys(tags, 0) | dict(db.execute(query))
    return Pushed(database, users, tags, sizes)


# ---------------------------------------------------------------------------- the drift


@dataclass
class TagDrift:
    """How one tag came to differ from what Learnster holds."""

    name: str
    new_name: str | None = None
    added: list[str] = field(default_factory=list)  # Graph user ids
    removed: list[str] = field(default_factory=list)

    def most_patches(self) -> int:
        """The PATCH /Groups that converge it, if the rename and each batch go on their own."""
        batches = math.ceil(len(self.added) / BATCH) + math.ceil(len(self.removed) / BATCH)
        return (self.new_name is not None) + batches


@dataclass
class Drift:
    """What changed in the directory since push stopped."""

    titles: int = 0  # users Learnster holds who got a new jobTitle
    hires: list[str] = field(default_factory=list)  # Graph ids
    managed: int = 0  # hires with a manager
    by_new_manager: int = 0  # of those, managed by another hire
    renamed: str = ""  # the tags of the fixed changes (Graph ids) ...
    added_to: str = ""
    removed_from: str = ""
    added: list[str] = field(default_factory=list)  # ... and their members (Graph ids)
    removed: list[str] = field(default_factory=list)
    tags: dict[str, TagDrift] = field(default_factory=dict)  # every tag that differs, hires' too

    def tag(self, gid: str, pushed: Pushed) -> TagDrift:
        return self.tags.setdefault(gid, TagDrift(pushed.tags[gid]))


def apply_drift(graph_url: str, pushed: Pushed, users: int, seed: int) -> Drift:
    """Change the directory as it drifted since push stopped (sizes scaled with ``users``)."""
    rng = random.Random(seed)
    drift = Drift()
    held = [u for u in list_users(graph_url) if u["id"] in pushed.users]
    drift.titles = min(len(held), max(MIN_TITLES, round(users * TITLE_SHARE)))
    retitle(graph_url, rng.sample(held, drift.titles))  # before the hires: none of them
    _change_tags(graph_url, pushed, drift, rng)
    _hire(graph_url, pushed, drift, rng, max(MIN_HIRES, round(users * HIRE_SHARE)))
    return drift


def _post(graph_url: str, path: str, body: dict[str, Any]) -> Any:
    return http_json(control_url(graph_url, path), method="POST", body=body)


def _change_tags(graph_url: str, pushed: Pushed, drift: Drift, rng: random.Random) -> None:
    """Rename a tag, add members to another and remove members from a third."""
    order = rng.sample(sorted(pushed.tags), len(pushed.tags))
    removable = [g for g in order if pushed.sizes[g] >= MEMBERS_REMOVED]
    drift.removed_from = (removable or order)[0]
    drift.renamed, drift.added_to = [g for g in order if g != drift.removed_from][:2]

    renamed = drift.tag(drift.renamed, pushed)
    renamed.new_name = f"{renamed.name} (renamed since push)"
    body = {"displayName": renamed.new_name}
    http_json(control_url(graph_url, f"groups/{drift.renamed}"), method="PATCH", body=body)

    outsiders = sorted(pushed.users.keys() - pushed.members(drift.added_to))
    drift.added = rng.sample(outsiders, min(MEMBERS_ADDED, len(outsiders)))
    for uid in drift.added:
        _post(graph_url, f"groups/{drift.added_to}/members", {"id": uid})
    drift.tag(drift.added_to, pushed).added.extend(drift.added)

    members = sorted(pushed.members(drift.removed_from))
    drift.removed = rng.sample(members, min(MEMBERS_REMOVED, len(members)))
    for uid in drift.removed:
        path = f"groups/{drift.removed_from}/members/{uid}"
        http_json(control_url(graph_url, path), method="DELETE")
    drift.tag(drift.removed_from, pushed).removed.extend(drift.removed)


def _hire(graph_url: str, pushed: Pushed, drift: Drift, rng: random.Random, count: int) -> None:
    """``count`` new users who join tags; every other one has a manager Learnster holds, but
    the second hire's manager is the first hire."""
    staff, tags = sorted(pushed.users), sorted(pushed.tags)
    for i in range(count):
        nick = f"takeover.hire{i}"
        props: dict[str, Any] = {
            "userPrincipalName": f"{nick}@{HIRE_DOMAIN}",
            "mailNickname": nick,
            "mail": f"{nick}@{HIRE_DOMAIN}",
            "displayName": f"Hire {i} since push",
            "givenName": "Hire",
            "surname": f"Number {i}",
            "jobTitle": "New hire",
            "department": "Benchmarks",
            "companyName": "Contoso",
            "city": "Stockholm",
            "country": "Sweden",
        }
        if i % 2:
            props["managerId"] = drift.hires[0] if i == 1 else rng.choice(staff)
            drift.managed += 1
            if i == 1:
                drift.by_new_manager += 1
        uid = _post(graph_url, "users", props)["id"]
        drift.hires.append(uid)
        for gid in rng.sample(tags, min(len(tags), 1 + i % HIRE_TAGS)):
            _post(graph_url, f"groups/{gid}/members", {"id": uid})
            drift.tag(gid, pushed).added.append(uid)


def expected_writes(drift: Drift) -> dict[str, tuple[int, int]]:
    """The SCIM writes that converge Learnster after ``drift``, by kind: (least, most).

    Users: a POST per hire, a PATCH per new title (+ a manager link for a hire whose manager
    is a hire, if it cannot ride in the POST). Tags: a PATCH per tag that differs (the rename,
    additions and removals in one, or each on its own); no POST, nothing deleted.
    """
    hires = len(drift.hires)
    most_patches = sum(tag.most_patches() for tag in drift.tags.values())
    return {
        "POST /Users": (hires, hires),
        "PATCH /Users": (drift.titles, drift.titles + drift.by_new_manager),
        "POST /Groups": (0, 0),
        "PATCH /Groups": (len(drift.tags), most_patches),
    }


# ---------------------------------------------------------------------------- the checks


@dataclass
class Check:
    ok: bool
    text: str


def _quoted(pushed: Pushed, gid: str) -> str:
    return f'"{pushed.tags[gid]}"'


def drift_summary(drift: Drift, pushed: Pushed) -> Check:
    """What the drift was (a statement, not a check)."""
    hires = set(drift.hires)
    joined = sum(uid in hires for tag in drift.tags.values() for uid in tag.added)
    return Check(
        True,
        f"takeover drift since push: {drift.titles:,} new job titles, {len(drift.hires):,} "
        f"hires ({drift.managed:,} with a manager, {drift.by_new_manager} of them by a hire) "
        f"in {joined:,} tag memberships, tag {_quoted(pushed, drift.renamed)} renamed, "
        f"{len(drift.added)} members added to {_quoted(pushed, drift.added_to)}, "
        f"{len(drift.removed)} removed from {_quoted(pushed, drift.removed_from)}: "
        f"{len(drift.tags):,} tags differ",
    )


def writes_check(run: RunResult, expected: dict[str, tuple[int, int]]) -> Check:
    """The takeover's SCIM writes against the drift's, kind by kind."""
    kinds = [*WRITES, *(k for k in sorted(run.scim_requests) if k not in WRITES)]
    parts, differ = [], []
    for kind in (k for k in kinds if not k.startswith("GET ")):
        least, most = expected.get(kind, (0, 0))
        actual = run.scim_requests.get(kind, 0)
        want = f"{least:,}" if least == most else f"{least:,}–{most:,}"
        if least <= actual <= most:
            parts.append(f"{kind} {actual:,} (expected {want})")
        else:
            off = actual - (most if actual > most else least)
            parts.append(f"{kind} {actual:,} (expected {want}: {off:+,})")
            differ.append(kind)
    verdict = "as expected" if not differ else f"MISMATCH in {', '.join(differ)}"
    return Check(not differ, f"takeover writes: {', '.join(parts)}: {verdict}")


def reads_check(run: RunResult, pushed: Pushed) -> Check:
    """The takeover's SCIM reads: Learnster's users and tags listed in pages (not looked up one
    by one), and at most one more read per tag (its members)."""
    gets = {k: v for k, v in run.scim_requests.items() if k.startswith("GET ")}
    users, tags = gets.pop("GET /Users", 0), gets.pop("GET /Groups", 0)
    user_pages = max(1, math.ceil(len(pushed.users) / PAGE))
    tag_pages = max(1, math.ceil(len(pushed.tags) / PAGE))
    lookups, per_tag = users - user_pages, tags - tag_pages
    bounded = lookups <= 0 and per_tag <= len(pushed.tags)
    verdict = "bounded by pages" if bounded else "MISMATCH: not bounded by pages"
    return Check(
        bounded,
        f"takeover reads: {users + tags + sum(gets.values()):,} SCIM GETs, {verdict}: "
        f"GET /Users {users:,} ({len(pushed.users):,} users in pages of {PAGE}: {user_pages:,}"
        + (f", + {lookups:,} more" if lookups > 0 else "")
        + f"), GET /Groups {tags:,} ({len(pushed.tags):,} tags in pages of {PAGE}: "
        f"{tag_pages:,}, + {max(0, per_tag):,} per-tag reads, at most {len(pushed.tags):,})"
        + "".join(f", {kind} {count:,}" for kind, count in sorted(gets.items())),
    )


def _learnster_tag(learnster_url: str, gid: str) -> dict[str, Any]:
    """The tag whose externalId is ``gid``, as the fake Learnster holds it."""
    query = urllib.parse.quote(f'externalId eq "{gid}"')
    found = http_json(f"{learnster_url}/Groups?filter={query}", token=LEARNSTER_TOKEN)
    resources = found.get("Resources") or [{}]
    return dict(resources[0])


def learnster_check(learnster_url: str, pushed: Pushed, drift: Drift) -> Check:
    """Whether Learnster holds the fixed tag changes after the takeover."""
    name = _learnster_tag(learnster_url, drift.renamed).get("displayName")
    want = drift.tags[drift.renamed].new_name
    facts = [(name == want, f'tag renamed to "{want}": ' + ("yes" if name == want else "no"))]
    for gid, users, change, expect in (
        (drift.added_to, drift.added, "added to", len(drift.added)),
        (drift.removed_from, drift.removed, "removed from", 0),
    ):
        members = {m.get("value") for m in _learnster_tag(learnster_url, gid).get("members", [])}
        found = sum(pushed.users[uid] in members for uid in users)
        there = "there" if expect else "still there"
        text = f"{found} of {len(users)} members {change} {_quoted(pushed, gid)} {there}"
        facts.append((found == expect, text + ("" if found == expect else " (MISMATCH)")))
    ok = all(good for good, _ in facts)
    return Check(ok, "takeover left in Learnster: " + "; ".join(text for _, text in facts))


def again_check(run: RunResult) -> Check:
    sent = ", ".join(f"{kind} {count:,}" for kind, count in run.scim_requests.items() if count)
    return Check(
        run.scim_total == 0,
        f"takeover-again: {run.scim_total:,} SCIM requests (expected 0)"
        + ("" if run.scim_total == 0 else f": MISMATCH ({sent})"),
    )


# ---------------------------------------------------------------------------- the steps


def run_takeover(
    cycle: Cycle,
    urls: tuple[str, str],
    database: Path,
    args: argparse.Namespace,
    report: dict[str, Any],
) -> None:
    """The steps after the initial cycle; ``report`` is filled in as they go.

    ``cycle`` runs one ``syncd sync`` (raising when it gives no report); ``urls`` are the fake
    Graph's and the fake Learnster's; ``database`` is syncd's state database (set aside);
    ``args`` gives the drift's size (``--users``) and seed.
    """
    graph_url, learnster_url = urls
    pushed = read_pushed(set_aside(database))
    report["push_state"] = str(database.parent / PUSH_STATE)
    started = time.perf_counter()
    drift = apply_drift(graph_url, pushed, args.users, args.seed)
    err.print(f"drifted the directory since push stopped ({time.perf_counter() - started:.1f} s)")
    expected = expected_writes(drift)
    report["drift"] = asdict(drift)
    report["expected_writes"] = {kind: list(bounds) for kind, bounds in expected.items()}
    checks = report["checks"] = [asdict(drift_summary(drift, pushed))]
    takeover = cycle("takeover", "new state database, Learnster as push left it, after drift")
    checks.append(asdict(writes_check(takeover, expected)))
    checks.append(asdict(reads_check(takeover, pushed)))
    checks.append(asdict(learnster_check(learnster_url, pushed, drift)))
    again = cycle("takeover-again", "delta cycle after the takeover, nothing changed")
    checks.append(asdict(again_check(again)))


def print_checks(report: dict[str, Any]) -> None:
    for check in report.get("checks", []):
        err.print(Text(check["text"], style="" if check["ok"] else "yellow"))
