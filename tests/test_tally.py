"""The apply stage's tally: the provisioning log is written as it grows, not held to the end."""

from __future__ import annotations

from syncd.adapters.memory import MemoryStore
from syncd.core.operations import DeleteUser, Outcome
from syncd.cycle.tally import LOG_LINES_BUFFERED, Tally


def test_the_provisioning_log_is_written_every_thousand_lines_and_at_the_flush() -> None:
    store = MemoryStore()
    run_id = store.runs.start("full", dry_run=False)
    tally = Tally(store.ledger, store.runs, run_id, {}, None)
    total = LOG_LINES_BUFFERED * 2 + 7
    for i in range(total):
        tally.outcome(DeleteUser(f"u{i}"), Outcome.DELETED)
        written = len(store.runs.entries(limit=10 * total))
        assert written == (i + 1) // LOG_LINES_BUFFERED * LOG_LINES_BUFFERED
    tally.flush()
    entries = store.runs.entries(limit=10 * total)
    assert len(entries) == total
    assert {e.object_id for e in entries} == {f"u{i}" for i in range(total)}
    assert tally.result.outcomes["delete_user"][Outcome.DELETED] == total
