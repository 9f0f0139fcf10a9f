"""Logging: human lines on a terminal, one JSON object per line under systemd (journald).

The format is ``--log-format`` (or ``$SYNCD_LOG_FORMAT``), else the configuration's
``[logging] format``, else ``auto``: JSON lines under systemd, text otherwise. Logging starts
before the configuration is read (its errors are logged too), with the command line's choice
or ``auto``; ``use_config_format`` switches to the configuration's once it is loaded, unless
the command line chose.

JSON lines carry the fields a record was logged with (``extra=``) that say what it is about:
``cycle`` (the run id the run log gave the cycle, the ``run`` of ``syncd status --log``; from
the cycle's context when the record does not name it), ``object`` (a Graph object id) and
``operation`` (an operation kind). Text lines leave them out: their message names the object.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

from syncd.cycle.context import CYCLE

LEVELS = ("debug", "info", "warning", "error", "critical")
FIELDS = ("cycle", "object", "operation")  # the extra fields JSON lines carry, in this order


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for journald and log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if name == "cycle" and value is None:
                value = CYCLE.get()
            if value is not None and value != "":
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _State:
    handler: logging.Handler | None = None
    chosen: str | None = None  # the command line's format; None: not chosen there
    json_lines = False


def under_systemd() -> bool:
    return bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))


def configure_logging(level: str = "INFO", log_format: str | None = None) -> None:
    """Install one handler on the root logger; third-party chatter is kept at WARNING.

    ``log_format``: auto, json or text as the command line chose it; None when it did not
    (auto until ``use_config_format``)."""
    handler = logging.StreamHandler(sys.stderr)
    _State.handler, _State.chosen = handler, log_format
    _set_format(log_format or "auto")
    root = logging.getLogger()
    root.handlers[:] = [handler]
    try:
        root.setLevel(level.upper())
    except ValueError:
        root.setLevel(logging.INFO)
    logging.getLogger("syncd").setLevel(logging.NOTSET)  # the root's level (the demo raises it)
    for noisy in ("httpx", "httpcore", "kiota", "msgraph", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # azure-identity logs every failed sign-in at WARNING; syncd reports it once, explained.
    for noisy in ("azure", "msal"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def use_config_format(log_format: str) -> None:
    """The configuration's ``[logging] format``, unless the command line chose one."""
    if _State.chosen is None:
        _set_format(log_format)


def json_lines() -> bool:
    """Whether log lines are JSON (then nothing else should write to stderr)."""
    return _State.json_lines


def _set_format(log_format: str) -> None:
    _State.json_lines = log_format == "json" or (log_format == "auto" and under_systemd())
    if _State.handler is None:
        return
    if _State.json_lines:
        _State.handler.setFormatter(JsonFormatter())
    else:
        _State.handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
        )
