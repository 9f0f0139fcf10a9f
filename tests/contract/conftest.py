"""What the contract suites share: the adapters each one runs over, and how to open them.

One suite per repository port (test_snapshot_repository.py, test_ledger_repository.py,
test_run_log.py); each has a fixture parametrised over ADAPTERS that yields that adapter's
repository, so every test runs against SQLite (the reference, what production runs) and the
in-memory adapter alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from syncd.adapters.memory import MemoryStore
from syncd.adapters.sqlite import Store
from syncd.ports import State

ADAPTERS = ["memory", "sqlite"]


@contextmanager
def open_store(kind: str, directory: Path) -> Iterator[State]:
    """The three repositories of one adapter: in memory, or a Store on a new database in
    ``directory``, closed after."""
    if kind == "memory":
        yield MemoryStore()
        return
    store = Store(str(directory / "state.db"))
    try:
        yield store
    finally:
        store.close()
