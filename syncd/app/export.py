"""``syncd status --log --format jsonl|csv``: the provisioning log exported, one line per operation.

Every line the filters let through, oldest first, read from the run log a page at a time and
written as it is read: an initial cycle of 100,000 users logs 100,000 lines, and none of them
is held longer than its page. Standard output carries the export alone.

The columns (CSV, in this order, after a header row) and keys (JSON lines) are ``COLUMNS``:

- ``time``: when the line was written, ISO 8601 in UTC (``2026-11-30T02:00:04.123456+00:00``);
- ``cycle``: the run id of the cycle (or ``syncd provision``) that did it, as JSON log lines
  name it;
- ``object_id``, ``object_name``: the Graph object id, and the UPN or group name at the time
  (empty when it was not known);
- ``operation``: ``create_user``, ``update_user``, ``delete_user``, ``create_group``,
  ``rename_group``, ``add_members``, ``remove_members`` or ``delete_group``;
- ``result``: ``created``, ``adopted``, ``updated``, ``unchanged``, ``deactivated``,
  ``deleted``, ``failed``, ``skipped``, ``stale`` or ``not sent (quarantine)``;
- ``error``: what Learnster answered, for a line that failed (else empty);
- ``changes``: attribute path -> ``[old, new]`` (``null`` where there is no value; a tag's
  ``members`` are ``[removed, added]`` Graph user ids). A JSON object in JSON lines, its JSON
  text in CSV; ``null`` (CSV: empty) for lines an older syncd wrote without it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import UTC
from typing import Any, TextIO

from syncd.ports import LogEntry, LogFilter, RunLog

COLUMNS = ("time", "cycle", "object_id", "object_name", "operation", "result", "error", "changes")
FORMATS = ("jsonl", "csv")
PAGE = 1000  # lines read from the state database at a time


def export_log(runs: RunLog, where: LogFilter, export_format: str, out: TextIO) -> int:
    """Write every line ``where`` lets through to ``out``, oldest first; how many were."""
    write = _csv_rows(out) if export_format == "csv" else _json_lines(out)
    written, after = 0, 0
    while page := runs.entries_after(after, PAGE, where):
        for entry in page:
            write(entry)
        written += len(page)
        after = page[-1].id
    out.flush()
    return written


def _fields(entry: LogEntry) -> dict[str, Any]:
    return {
        "time": entry.at.replace(tzinfo=UTC).isoformat(timespec="microseconds"),
        "cycle": entry.run_id,
        "object_id": entry.object_id,
        "object_name": "" if entry.label == entry.object_id else entry.label,
        "operation": entry.operation,
        "result": entry.outcome,
        "error": entry.detail,
    }


def _json_lines(out: TextIO) -> Callable[[LogEntry], None]:
    encode = json.JSONEncoder(ensure_ascii=False).encode

    def write(entry: LogEntry) -> None:
        out.write(encode({**_fields(entry), "changes": entry.changes_json()}) + "\n")

    return write


def _csv_rows(out: TextIO) -> Callable[[LogEntry], None]:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)

    def write(entry: LogEntry) -> None:
        fields = _fields(entry)
        writer.writerow([*fields.values(), entry.changes])

    return write
