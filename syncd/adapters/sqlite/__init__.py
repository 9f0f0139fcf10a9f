"""The state repositories in one SQLite file (WAL), written once per acknowledged operation."""

from syncd.adapters.sqlite.store import SCHEMA_VERSION, TABLES, Store, cycle_lock

__all__ = ["SCHEMA_VERSION", "TABLES", "Store", "cycle_lock"]
