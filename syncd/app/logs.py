"""Logging: human lines on a terminal, one JSON object per line under systemd (journald)."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for journald and log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def under_systemd() -> bool:
    return bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))


def configure_logging(level: str = "INFO") -> None:
    """Install one handler on the root logger; third-party chatter is kept at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    if under_systemd():
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    try:
        root.setLevel(level.upper())
    except ValueError:
        root.setLevel(logging.INFO)
    for noisy in ("httpx", "httpcore", "kiota", "msgraph", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # azure-identity logs every failed sign-in at WARNING; syncd reports it once, explained.
    for noisy in ("azure", "msal"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
