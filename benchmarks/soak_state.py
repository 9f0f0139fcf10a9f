"""The soak's measurements: the state database (read-only), the daemon's /proc, and Learnster.

The state database is opened read-only for each look and closed at once, so the soak holds no
transaction that would keep the daemon's WAL from being checkpointed. Learnster is checked
against the final tenant with the assertions of the end-to-end tests
(``tests/test_sync_e2e.py``), widened to users syncd deactivated.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncd.fakes.graph import FakeGraph
from syncd.fakes.learnster import FakeLearnster
from tests.test_sync_e2e import ENTERPRISE, assert_user_matches, user_name_of

# ---------------------------------------------------------------------------- state database


@contextlib.contextmanager
def read_only(database: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        yield db
    finally:
        db.close()


@dataclass(frozen=True)
class RunRow:
    id: int
    started_at: str
    finished_at: str
    exit_code: int | None
    mode: str
    message: str


def finished_runs(database: Path, after: int) -> list[RunRow]:
    """The runs after run ``after`` that have finished, oldest first ([] before the first)."""
    if not database.exists():
        return []
    try:
        with read_only(database) as db:
            rows = db.execute(
                "SELECT id, started_at, finished_at, exit_code, mode, message FROM run "
                "WHERE id > ? AND finished_at IS NOT NULL ORDER BY id",
                (after,),
            ).fetchall()
    except sqlite3.OperationalError:  # the daemon has not created its tables yet
        return []
    return [RunRow(*row) for row in rows]


def latest_run(database: Path) -> int:
    with read_only(database) as db:
        return int(db.execute("SELECT coalesce(max(id), 0) FROM run").fetchone()[0])


def converged(database: Path) -> tuple[bool, int]:
    """Whether the last cycle left Learnster in sync (the ledger's mark), and escrows left."""
    with read_only(database) as db:
        mark = db.execute("SELECT value FROM meta WHERE key = 'converged'").fetchone()
        escrows = int(db.execute("SELECT count(*) FROM escrow").fetchone()[0])
    return bool(mark and mark[0]), escrows


def database_figures(database: Path) -> dict[str, Any]:
    """Sizes (main file, WAL), pages, rows per table and bytes per table (indexes included)."""
    wal = Path(f"{database}-wal")
    with read_only(database) as db:
        tables = [
            str(r[0])
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "ORDER BY name"
            )
        ]
        rows = {t: int(db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables}
        owner = dict(db.execute("SELECT name, tbl_name FROM sqlite_master"))
        used: Counter[str] = Counter()
        for name, size in db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            used[str(owner.get(name, name))] += int(size)
        pragma = {
            p: int(db.execute(f"PRAGMA {p}").fetchone()[0])
            for p in ("page_size", "page_count", "freelist_count")
        }
    return {
        "main_bytes": database.stat().st_size,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
        **pragma,
        "rows": rows,
        "table_bytes": {t: used.get(t, 0) for t in tables},
    }


def log_figures(database: Path, log_days: float) -> dict[str, Any]:
    """The provisioning log against ``[state] log_days``, at the newest run's start."""
    with read_only(database) as db:
        newest = db.execute("SELECT max(started_at) FROM run").fetchone()[0]
        stale = db.execute(
            "SELECT count(*) FROM provisioning_log WHERE run_id IN (SELECT id FROM run "
            "WHERE julianday(started_at) < julianday(?) - ?)",
            (newest, log_days),
        ).fetchone()[0]
        kept_runs, rows = db.execute(
            "SELECT count(DISTINCT run_id), count(*) FROM provisioning_log"
        ).fetchone()
        window = db.execute(
            "SELECT count(*) FROM run WHERE julianday(started_at) >= julianday(?) - ?",
            (newest, log_days),
        ).fetchone()[0]
    return {
        "rows": int(rows),
        "runs_with_rows": int(kept_runs),
        "runs_in_window": int(window),
        "rows_older_than_log_days": int(stale),
    }


# ---------------------------------------------------------------------------- the process


@dataclass(frozen=True)
class Sample:
    """The daemon between two cycles: after cycle ``cycle`` finished."""

    cycle: int
    seconds: float  # since the soak began
    rss_kb: int
    hwm_kb: int
    fds: int
    busy: bool  # the next cycle had already started when the sample was taken


def proc_memory(pid: int) -> tuple[int, int]:
    """VmRSS and VmHWM of ``pid`` in KiB (proc(5))."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def open_fds(pid: int) -> dict[str, str]:
    """The open file descriptors of ``pid`` and what each points at."""
    fds = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed while we looked
            fds[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
    return fds


def fd_kinds(fds: Mapping[str, str]) -> dict[str, int]:
    """``open_fds`` counted by kind: sockets, pipes, anon inodes, each file."""
    kinds: Counter[str] = Counter()
    for target in fds.values():
        kind = target.split(":", 1)[0] if target.startswith(("socket:", "pipe:")) else target
        kinds[kind] += 1
    return dict(sorted(kinds.items()))


# ---------------------------------------------------------------------------- Learnster


def learnster_problems(
    graph: FakeGraph, learnster: FakeLearnster, recycled: Mapping[str, str]
) -> list[str]:
    """How Learnster differs from the mapping of the directory (``[]``: it is exact).

    Every enabled user is there, active, mapped field by field as the e2e tests check it, with
    its manager's Learnster id when Learnster holds the manager; a disabled user Learnster
    holds is mapped the same but inactive; one in the recycle bin (``recycled``: id -> UPN) is
    inactive; no other Learnster user exists (hard deletes are gone). Every group is one tag
    whose members are exactly its direct members Learnster holds.
    """
    problems: list[str] = []
    live = {u["id"]: u for u in graph.users}
    by_name = {str(r["userName"]).lower(): r for r in learnster.users.values()}
    if len(by_name) != len(learnster.users):
        problems.append("a userName exists twice in Learnster")
    names = {uid: user_name_of(u).lower() for uid, u in live.items()}
    names.update({uid: upn.replace("#EXT#", "").lower() for uid, upn in recycled.items()})
    held = {uid: by_name[name] for uid, name in names.items() if name in by_name}
    scim = {uid: str(r["id"]) for uid, r in held.items()}
    for uid, user in live.items():
        problems.extend(_user_problems(graph, user, held.get(uid), scim))
    for uid in recycled:
        if uid in held and held[uid].get("active") is not False:
            problems.append(f"{names[uid]}: in the recycle bin, active in Learnster")
    strays = sorted(set(by_name) - {names[uid] for uid in held})
    if strays:
        problems.append(f"{len(strays)} Learnster users are no directory user: {strays[:5]}")
    problems.extend(_tag_problems(graph, learnster, scim))
    return problems


def _user_problems(
    graph: FakeGraph, user: dict[str, Any], resource: Any, scim: Mapping[str, str]
) -> list[str]:
    name = user_name_of(user)
    enabled = bool(user.get("accountEnabled"))
    if resource is None:
        return [f"{name}: enabled in the directory, not in Learnster"] if enabled else []
    if resource.get("active") is not enabled:
        return [f"{name}: accountEnabled {enabled}, active {resource.get('active')} in Learnster"]
    try:
        assert_user_matches(user, {**resource, "active": True})
    except AssertionError as exc:
        return [str(exc).splitlines()[0]]
    manager = graph.manager_of(user["id"])
    expected = scim.get(manager) if manager else None
    sent = resource.get(ENTERPRISE, {}).get("manager", {}).get("value")
    return [] if sent == expected else [f"{name}: manager {sent} in Learnster, not {expected}"]


def _tag_problems(graph: FakeGraph, learnster: FakeLearnster, scim: Mapping[str, str]) -> list[str]:
    problems = []
    groups = graph.groups
    external = [g.get("externalId") for g in learnster.groups.values()]
    if len(external) != len(set(external)):
        problems.append("a tag exists twice in Learnster")
    if len(external) != len(groups):
        problems.append(f"{len(external)} tags in Learnster for {len(groups)} groups")
    for group in groups:
        tag = learnster.group_by_external_id(group["id"])
        if tag is None:
            problems.append(f"group {group['displayName']}: no tag")
            continue
        if not str(tag["displayName"]).startswith(group["displayName"]):
            problems.append(f"group {group['displayName']}: tag named {tag['displayName']}")
        members = {m["value"] for m in tag.get("members", [])}
        expected = {scim[m] for m in graph.member_ids(group["id"]) if m in scim}
        if members != expected:
            problems.append(
                f"group {group['displayName']}: {len(expected - members)} members missing "
                f"from the tag, {len(members - expected)} too many"
            )
    return problems
