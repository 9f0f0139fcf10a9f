"""The RunLog contract, over both adapters: run history, provisioning log, guard and health."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from syncd.adapters.memory import MemoryRunLog
from syncd.adapters.policy import LOG_KEEP_DAYS
from syncd.adapters.sqlite.runs import SqliteRunLog
from syncd.adapters.sqlite.sql import sql_time
from syncd.core.limiter import Learned
from syncd.ports import LogFilter, LogLine, Run, RunLog
from tests.contract.conftest import ADAPTERS, open_store

T1 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=ADAPTERS)
def runs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunLog]:
    with open_store(request.param, tmp_path) as store:
        yield store.runs


def line(object_id: str, label: str = "", outcome: str = "ok") -> LogLine:
    return LogLine(object_id, label or f"{object_id}@x.example", "update", outcome, "")


def logged(
    runs: RunLog, limit: int = 100, object_key: str = "", where: LogFilter | None = None
) -> list[tuple[int, str]]:
    """(run id, object id) of the log lines ``entries`` hands out, in its order."""
    return [(e.run_id, e.object_id) for e in runs.entries(limit, object_key, where)]


def backdate(runs: RunLog, run_id: int, days: float) -> None:
    """Move the start of run ``run_id`` back by ``days``, as if it had begun then.

    No port writes a start time, so this reaches into each adapter's storage: the ``run`` row
    in SQLite (the connection ``Store._raw`` shares), the stored ``Run`` in memory.
    """
    run = run_of(runs, run_id)
    started = run.started_at - timedelta(days=days)
    if isinstance(runs, MemoryRunLog):
        runs._runs[run_id] = dataclasses.replace(run, started_at=started)
    else:
        assert isinstance(runs, SqliteRunLog)
        with runs._db:
            runs._db.execute(
                "UPDATE run SET started_at = ? WHERE id = ?",
                (sql_time(started.replace(tzinfo=UTC)), run_id),
            )
    assert run_of(runs, run_id).started_at == started


def run_of(runs: RunLog, run_id: int) -> Run:
    (run,) = [r for r in runs.recent(1_000_000) if r.id == run_id]
    return run


# -- run history ------------------------------------------------------------------------------


def test_start_gives_increasing_ids_and_an_unfinished_run(runs: RunLog) -> None:
    before = datetime.now(UTC).replace(tzinfo=None)
    first = runs.start("full", dry_run=False)
    second = runs.start("delta", dry_run=True)

    assert second > first
    newest, oldest = runs.recent()
    assert (oldest.id, oldest.mode, oldest.dry_run) == (first, "full", False)
    assert (newest.id, newest.mode, newest.dry_run) == (second, "delta", True)
    assert (newest.finished_at, newest.exit_code, newest.counts, newest.message) == (
        None,
        None,
        "{}",
        "",
    )
    assert before <= oldest.started_at <= newest.started_at  # naive UTC
    assert newest.started_at <= datetime.now(UTC).replace(tzinfo=None)


def test_finish_records_counts_as_json_text_exit_code_and_message(runs: RunLog) -> None:
    run_id = runs.start("delta", dry_run=False)
    other = runs.start("delta", dry_run=False)
    counts = {"update_user": {"ok": 3, "failed": 1}, "create_user": {"ok": 2}}

    runs.finish(run_id, counts, 1, "1 operation failed")

    finished, unfinished = runs.recent()[1], runs.recent()[0]
    assert finished.id == run_id
    assert finished.counts == ('{"create_user": {"ok": 2}, "update_user": {"failed": 1, "ok": 3}}')
    assert json.loads(finished.counts) == counts
    assert (finished.exit_code, finished.message) == (1, "1 operation failed")
    assert finished.finished_at is not None
    assert finished.finished_at >= finished.started_at
    assert (unfinished.id, unfinished.finished_at, unfinished.exit_code) == (other, None, None)


def test_finish_of_an_unknown_run_changes_nothing(runs: RunLog) -> None:
    run_id = runs.start("full", dry_run=False)

    runs.finish(run_id + 1, {}, 0, "")

    assert [(r.id, r.finished_at) for r in runs.recent()] == [(run_id, None)]


def test_recent_lists_the_newest_runs_first(runs: RunLog) -> None:
    ids = [runs.start("delta", dry_run=False) for _ in range(12)]

    assert [r.id for r in runs.recent(3)] == ids[:-4:-1]
    assert [r.id for r in runs.recent()] == ids[:1:-1]  # ten by default
    assert [r.id for r in runs.recent(-1)] == ids[::-1]  # a negative limit: no limit
    assert runs.recent(0) == []


# -- provisioning log -------------------------------------------------------------------------


def test_entries_are_the_appended_lines_newest_first(runs: RunLog) -> None:
    first = runs.start("full", dry_run=False)
    runs.append(first, [line("ann"), line("bob", outcome="failed")])
    second = runs.start("delta", dry_run=False)
    runs.append(second, [line("cy")])
    runs.append(second, [])

    entries = runs.entries()

    assert logged(runs) == [(second, "cy"), (first, "bob"), (first, "ann")]
    assert [e.id for e in entries] == sorted({e.id for e in entries}, reverse=True)
    assert entries[1] == dataclasses.replace(
        entries[1],
        label="bob@x.example",
        operation="update",
        outcome="failed",
        detail="",
    )
    assert entries[0].at.tzinfo is None
    assert logged(runs, 2) == [(second, "cy"), (first, "bob")]
    assert logged(runs, -1) == logged(runs)  # a negative limit: no limit
    assert logged(runs, 0) == []


def test_entries_of_one_object_match_its_id_or_its_label(runs: RunLog) -> None:
    run_id = runs.start("full", dry_run=False)
    runs.append(
        run_id,
        [line("u1", "ann@x.example"), line("u2", "u1"), line("u3", "cy@x.example"), line("u1")],
    )

    assert [e.label for e in runs.entries(object_key="u1")] == [
        "u1@x.example",
        "u1",
        "ann@x.example",
    ]
    assert logged(runs, object_key="cy@x.example") == [(run_id, "u3")]
    assert logged(runs, 1, "u1") == [(run_id, "u1")]
    assert logged(runs, object_key="ANN@x.example") == []  # exact, not folded
    assert logged(runs, object_key="nobody") == []


def test_start_prunes_the_log_of_runs_begun_more_than_the_keep_days_ago(runs: RunLog) -> None:
    old = runs.start("full", dry_run=False)
    runs.append(old, [line("ann"), line("bob")])
    recent = runs.start("delta", dry_run=False)
    runs.append(recent, [line("cy")])
    backdate(runs, old, LOG_KEEP_DAYS + 1)
    backdate(runs, recent, LOG_KEEP_DAYS - 1)
    assert len(runs.entries()) == 3  # nothing pruned until a run starts

    newest = runs.start("delta", dry_run=False)

    assert logged(runs) == [(recent, "cy")]
    assert [r.id for r in runs.recent()] == [newest, recent, old]  # the history stays
    runs.append(newest, [line("dee")])
    assert logged(runs) == [(newest, "dee"), (recent, "cy")]
    ids = [e.id for e in runs.entries()]
    assert ids[0] > ids[1]  # ids keep increasing: the new line is not numbered as a pruned one
    assert runs.entries(object_key="ann") == []


def test_start_keeps_the_log_as_many_days_as_it_is_told_fractions_too(runs: RunLog) -> None:
    old = runs.start("delta", dry_run=False)
    runs.append(old, [line("ann")])
    recent = runs.start("delta", dry_run=False)
    runs.append(recent, [line("bob")])
    backdate(runs, old, 0.01)  # 14.4 minutes ago
    backdate(runs, recent, 0.004)  # 5.8 minutes ago

    runs.start("delta", dry_run=False, keep_days=0.005)  # [state] log_days = 0.005: 7.2 minutes

    assert logged(runs) == [(recent, "bob")]
    runs.start("delta", dry_run=False, keep_days=LOG_KEEP_DAYS)
    assert logged(runs) == [(recent, "bob")]


def test_a_line_keeps_what_its_operation_changed(runs: RunLog) -> None:
    run_id = runs.start("full", dry_run=False)
    changes = '{"active":[true,false],"title":["Ö","Å"]}'
    runs.append(run_id, [LogLine("u1", "a@x.example", "update_user", "deactivated", "", changes)])
    runs.append(run_id, [line("u2")])  # what an older syncd wrote: no changes

    second, first = runs.entries()
    assert (first.changes, second.changes) == (changes, "")
    assert first.to_json()["changes"] == {"active": [True, False], "title": ["Ö", "Å"]}
    assert second.to_json()["changes"] is None


def test_entries_are_filtered_by_object_and_by_when_they_were_written(runs: RunLog) -> None:
    run_id = runs.start("full", dry_run=False)
    runs.append(run_id, [line("u1", "ann@x.example"), line("u2"), line("u3", "u1")])
    [written] = {e.at for e in runs.entries()}
    after = written.replace(tzinfo=UTC) + timedelta(microseconds=1)

    assert logged(runs, where=LogFilter(frozenset({"u1"}))) == [(run_id, "u3"), (run_id, "u1")]
    two = LogFilter(frozenset({"ann@x.example", "u2"}))
    assert logged(runs, where=two) == [(run_id, "u2"), (run_id, "u1")]
    assert logged(runs, 100, "u2", where=two) == [(run_id, "u2")]  # both must hold
    assert logged(runs, where=LogFilter(frozenset({"ANN@x.example"}))) == []  # exact
    assert len(runs.entries(where=LogFilter(since=written.replace(tzinfo=UTC)))) == 3
    assert runs.entries(where=LogFilter(since=after)) == []
    in_stockholm = after.astimezone(timezone(timedelta(hours=1)))  # the same moment
    assert runs.entries(where=LogFilter(since=in_stockholm)) == []
    assert runs.entries(where=LogFilter(frozenset({"u2"}), after - timedelta(hours=1))) != []


def test_entries_after_read_the_whole_log_in_pages_oldest_first(runs: RunLog) -> None:
    first = runs.start("full", dry_run=False)
    runs.append(first, [line(f"u{n}") for n in range(5)])
    second = runs.start("delta", dry_run=False)
    runs.append(second, [line("u1"), line("u9")])

    pages, after = [], 0
    while page := runs.entries_after(after, 3):
        pages.append([(e.run_id, e.object_id) for e in page])
        after = page[-1].id
    assert pages == [
        [(first, "u0"), (first, "u1"), (first, "u2")],
        [(first, "u3"), (first, "u4"), (second, "u1")],
        [(second, "u9")],
    ]
    where = LogFilter(frozenset({"u1", "u9"}))
    assert [(e.run_id, e.object_id) for e in runs.entries_after(0, where=where)] == [
        (first, "u1"),
        (second, "u1"),
        (second, "u9"),
    ]
    assert runs.entries_after(0, -1) == runs.entries(-1)[::-1]  # a negative limit: none
    assert runs.entries_after(runs.entries(1)[0].id) == []


# -- guard and health -------------------------------------------------------------------------


def test_guard_keeps_when_it_first_tripped_until_it_clears(runs: RunLog) -> None:
    assert runs.guard() is None

    runs.set_guard(3, "3 removals held", T1)
    assert runs.guard() == {"held": 3, "message": "3 removals held", "since": T1.isoformat()}

    runs.set_guard(5, "5 removals held", T1 + timedelta(hours=1))
    assert runs.guard() == {"held": 5, "message": "5 removals held", "since": T1.isoformat()}

    runs.set_guard(0, "", T1 + timedelta(hours=2))
    assert runs.guard() is None

    later = T1 + timedelta(days=1)
    runs.set_guard(1, "1 removal held", later)
    assert runs.guard() == {"held": 1, "message": "1 removal held", "since": later.isoformat()}


def test_health_hands_back_the_last_state_as_json_reads_it(runs: RunLog) -> None:
    assert runs.health() is None

    runs.set_health({"state": "degraded", "since": T1.isoformat(), "failures": (1, 2)})
    assert runs.health() == {"state": "degraded", "since": T1.isoformat(), "failures": [1, 2]}

    runs.set_health({"state": "ok"})
    assert runs.health() == {"state": "ok"}

    runs.set_health({})
    assert runs.health() == {}


def test_health_and_guard_are_not_shared_with_the_caller(runs: RunLog) -> None:
    state = {"state": "ok", "detail": {"cycles": 1}}
    runs.set_health(state)
    state["detail"]["cycles"] = 2
    runs.health()["detail"]["cycles"] = 3
    runs.set_guard(1, "held", T1)
    runs.guard()["held"] = 9

    assert runs.health() == {"state": "ok", "detail": {"cycles": 1}}
    assert runs.guard() == {"held": 1, "message": "held", "since": T1.isoformat()}


def test_what_a_cycle_learned_of_learnster_is_kept_for_the_next(runs: RunLog) -> None:
    assert runs.learnster_limit() is None
    runs.set_learnster_limit(Learned(limit=10, throttled=True))
    assert runs.learnster_limit() == Learned(limit=10, throttled=True)
    runs.set_learnster_limit(Learned(limit=14, throttled=False))
    assert runs.learnster_limit() == Learned(limit=14, throttled=False)
