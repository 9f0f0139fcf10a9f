"""``syncd status --log [--since DATE] [--user U] [--format text|jsonl|csv]``: its options, what
they refuse, which lines they ask for, and the export (``syncd.app.export``, imported only
when one is asked for)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime

from syncd.ports import LogFilter, RunLog, State

EXPORTS = ("jsonl", "csv")


def _moment(text: str) -> datetime:
    """``--since``'s DATE: an ISO 8601 date or date and time; without an offset, UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date or date and time, e.g. 2026-11-30 or "
            "2026-11-30T12:00 (UTC unless an offset follows, e.g. 2026-11-30T12:00+01:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_log_options(status: argparse.ArgumentParser) -> None:
    status.add_argument(
        "--log",
        nargs="?",
        const="",
        metavar="USER",
        help="the provisioning log, one line per operation: the latest 100 (text), or every "
        "line (--format jsonl|csv); USER is --user's shorthand. Lines are kept [state] "
        "log_days days (default 30)",
    )
    status.add_argument(
        "--user",
        metavar="U",
        help="with --log: only the lines of this user or group (object id, UPN, group name)",
    )
    status.add_argument(
        "--since",
        type=_moment,
        metavar="DATE",
        help="with --log: only lines written at or after DATE (2026-11-30, 2026-11-30T12:00; "
        "UTC unless an offset is given)",
    )
    status.add_argument(
        "--format",
        choices=("text", *EXPORTS),
        help="with --log: text (default, with the status), or only the log on stdout, oldest "
        "first: jsonl (one JSON object per line) or csv (a header row first); not with --json",
    )


def check_log_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What the log options refuse: a usage error (exit 2)."""
    for option in ("user", "since", "format"):
        if getattr(args, option) is not None and args.log is None:
            parser.error(f"--{option} needs --log")
    if args.format is not None and args.json:
        parser.error("--format and --json are two output formats: use one")
    if args.format in EXPORTS and args.drift:
        parser.error(f"--format {args.format} exports the log alone: --drift cannot go with it")
    if args.log and args.user and args.log != args.user:
        parser.error(f"--log {args.log} and --user {args.user} name two objects: use one")


def log_filter(state: State, user: str, since: datetime | None) -> LogFilter:
    """The lines of ``user`` (an object id, or a label as logged; a UPN also finds the lines
    of the user who holds it now, under any earlier UPN, in any case), written ``since``."""
    objects = set()
    if user:
        objects.add(user)
        for ids in state.snapshot.ids_by_user_name([user]).values():
            objects |= ids
    return LogFilter(frozenset(objects), since)


def export(runs: RunLog, where: LogFilter, export_format: str) -> int:
    """The lines on standard output, nothing else; exit code 0."""
    from syncd.app.export import export_log

    try:
        export_log(runs, where, export_format, sys.stdout)
    except BrokenPipeError:  # `syncd status --log --format csv | head`: the reader has enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the exit's flush goes nowhere, quietly
    return 0
