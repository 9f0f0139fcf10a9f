"""The soak's figures, its pass/fail checks and its text report."""

from __future__ import annotations

import argparse
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.soak import Soak
    from benchmarks.soak_state import RunRow, Sample

# What each table holds, for the size explanation.
TABLES = {
    "snapshot_user": "one per directory user syncd has read (live or in the recycle bin)",
    "snapshot_group": "one per directory group",
    "ledger_user": "one per user Learnster acknowledged",
    "ledger_group": "one per tag Learnster acknowledged",
    "ledger_member": "one per tag membership Learnster acknowledged",
    "provisioning_log": "one per operation sent, kept [state] log_days",
    "run": "one per cycle, never pruned",
    "escrow": "one per object waiting for its retry",
    "delta_link": "one per delta round (users, groups)",
}


def _sample_json(sample: Sample | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    return {
        "cycle": sample.cycle,
        "rss_mb": round(sample.rss_kb / 1024, 1),
        "hwm_mb": round(sample.hwm_kb / 1024, 1),
        "fds": sample.fds,
        "busy": sample.busy,
    }


def _daemon_log(text: str) -> dict[str, int]:
    levels = Counter(m.group(1) for m in re.finditer(r"^\S+ (WARNING|ERROR|CRITICAL) ", text, re.M))
    return {
        "lines": text.count("\n"),
        "warnings": levels["WARNING"],
        "errors": levels["ERROR"] + levels["CRITICAL"],
        "cycles_skipped_while_one_ran": text.count("maximum number of running instances"),
        "cycles_crashed": text.count("cycle crashed"),
        "tracebacks": text.count("Traceback (most recent call last)"),
    }


def _durations(runs: Sequence[RunRow]) -> dict[str, float]:
    """Seconds the cycles took (from the run table): the first, then the others' spread."""
    seconds = [
        (
            datetime.fromisoformat(r.finished_at) - datetime.fromisoformat(r.started_at)
        ).total_seconds()
        for r in runs
    ]
    if not seconds:
        return {}
    rest = sorted(seconds[1:]) or seconds
    return {
        "first": round(seconds[0], 2),
        "median": round(statistics.median(rest), 2),
        "p95": round(rest[min(len(rest) - 1, int(len(rest) * 0.95))], 2),
        "max": round(rest[-1], 2),
    }


def summary(soak: Soak) -> dict[str, Any]:
    """What the soak measured, as the JSON document holds it."""
    samples = soak.samples
    by_cycle = {s.cycle: s for s in samples}
    exits = Counter(str(r.exit_code) for r in soak.runs)
    messages = Counter(r.message for r in soak.runs if r.exit_code)
    log = soak.log_path.read_text(errors="replace") if soak.log_path.exists() else ""
    return {
        "cycles": {
            "soak": len(soak.runs),
            "settle": soak.settle.get("cycles"),
            "exit_codes": dict(sorted(exits.items())),
            "modes": dict(Counter(r.mode for r in soak.runs)),
            "seconds": _durations(soak.runs),
            "non_zero_exit_messages": dict(messages.most_common(8)),
        },
        "settle": soak.settle,
        "changes": dict(sorted(soak.mutator.changes.items())),
        "faults_injected": dict(sorted(soak.mutator.faults.items())),
        "faults_met": dict(sorted(soak.met.items())),
        "mutator_errors": soak.mutator.errors[:20],
        "process": {
            "baseline": _sample_json(by_cycle.get(soak.args.baseline)),
            "last": _sample_json(samples[-1] if samples else None),
            "max_rss": _sample_json(max(samples, key=lambda s: s.rss_kb) if samples else None),
            "max_fds": _sample_json(max(samples, key=lambda s: s.fds) if samples else None),
            "fds_by_kind": soak.fds,
        },
        "database": soak.figures,
        "database_explained": explain_database(soak.figures.get("end"), soak.args.log_days),
        "daemon_log": _daemon_log(log),
        "samples": [[s.cycle, s.seconds, s.rss_kb, s.hwm_kb, s.fds, s.busy] for s in samples],
    }


def explain_database(figures: dict[str, Any] | None, log_days: float) -> list[str]:
    """The database's size, table by table: rows x bytes per row (dbstat, indexes included)."""
    if not figures:
        return []
    lines = []
    page = figures["page_size"]
    for table, what in TABLES.items():
        rows = figures["rows"].get(table, 0)
        size = figures["table_bytes"].get(table, 0)
        per_row = f"{size / rows:,.0f} B/row" if rows else "-"
        lines.append(f"{table}: {rows:,} rows, {size / 1024:,.0f} KiB ({per_row}): {what}")
    other = sum(s for t, s in figures["table_bytes"].items() if t not in TABLES)
    free = figures["freelist_count"] * page
    lines.append(
        f"other tables {other / 1024:,.0f} KiB; free pages {figures['freelist_count']:,} "
        f"({free / 1024:,.0f} KiB: pruned log rows' pages, reused before the file grows)"
    )
    lines.append(
        f"main file {figures['main_bytes'] / 1024:,.0f} KiB = {figures['page_count']:,} pages "
        f"x {page} B; WAL {figures['wal_bytes'] / 1024:,.0f} KiB; log_days {log_days:g} "
        f"= {log_days * 86400:,.0f} s"
    )
    return lines


def checks(document: dict[str, Any], args: argparse.Namespace) -> dict[str, bool]:
    """The soak's verdicts; any False fails it."""
    process = document.get("process") or {}
    baseline, last = process.get("baseline"), process.get("last")
    grown = last["rss_mb"] - baseline["rss_mb"] if baseline and last else None
    daemon_log = document.get("daemon_log") or {}
    return {
        "learnster_matches_the_mapping": (
            "learnster_problems" in document and not document["learnster_problems"]
        ),
        "converged_once_faults_cleared": bool((document.get("settle") or {}).get("converged")),
        "daemon_stopped_cleanly": (document.get("daemon_stop") or {}).get("exit_code") == 0,
        "rss_within_tolerance": grown is not None and grown <= args.rss_tolerance_mb,
        "fds_did_not_grow": bool(baseline and last and last["fds"] <= baseline["fds"]),
        "log_pruned_to_log_days": (document.get("log") or {}).get("rows_older_than_log_days") == 0,
        "no_cycle_crashed": daemon_log.get("cycles_crashed", 1) == 0
        and daemon_log.get("tracebacks", 1) == 0,
    }


def _mb(figures: dict[str, Any] | None) -> str:
    if not figures:
        return "-"
    return (
        f"{(figures['main_bytes'] + figures['wal_bytes']) / 1024 / 1024:.2f} MB "
        f"(main {figures['main_bytes'] / 1024:,.0f} KiB + WAL {figures['wal_bytes'] / 1024:,.0f} "
        "KiB)"
    )


def _process_line(label: str, sample: dict[str, Any] | None) -> str:
    if not sample:
        return f"  {label}: -"
    return (
        f"  {label} (cycle {sample['cycle']}): RSS {sample['rss_mb']:.1f} MB, "
        f"HWM {sample['hwm_mb']:.1f} MB, {sample['fds']} fds"
        + (" (next cycle under way)" if sample["busy"] else "")
    )


def print_report(document: dict[str, Any], args: argparse.Namespace) -> None:
    cycles = document.get("cycles", {})
    process = document.get("process", {})
    database = document.get("database", {})
    print()
    print(
        f"soak: {args.users:,} users, syncd run --every {args.every:g}, {args.changes} changes "
        f"between cycles, faults in {args.fault_share:.0%} of them"
    )
    print(
        f"cycles: {cycles.get('soak')} soak + {cycles.get('settle')} after the faults were "
        f"cleared; exit codes {cycles.get('exit_codes')}; seconds {cycles.get('seconds')}"
    )
    for message, count in (cycles.get("non_zero_exit_messages") or {}).items():
        print(f"  {count} x {message[:150]}")
    injected = document.get("faults_injected", {})
    print(f"faults injected: {sum(injected.values())} {injected}")
    print(f"faults the fakes answered: {document.get('faults_met')}")
    print(f"tenant changes: {document.get('changes')}")
    print("daemon process:")
    print(_process_line("baseline", process.get("baseline")))
    print(_process_line("last", process.get("last")))
    print(_process_line("max RSS", process.get("max_rss")))
    print(_process_line("max fds", process.get("max_fds")))
    for label, kinds in (process.get("fds_by_kind") or {}).items():
        print(f"  fds at {label}: {kinds}")
    print(f"state database at cycle {args.baseline}: {_mb(database.get(f'cycle {args.baseline}'))}")
    print(f"state database at cycle {args.cycles}: {_mb(database.get(f'cycle {args.cycles}'))}")
    print(f"state database at the end (daemon stopped): {_mb(database.get('end'))}")
    for line in document.get("database_explained", []):
        print(f"  {line}")
    print(f"provisioning log: {document.get('log')}")
    print(f"daemon: stop {document.get('daemon_stop')}, log {document.get('daemon_log')}")
    print(f"Learnster: {document.get('learnster_counts')}")
    for problem in (document.get("learnster_problems") or [])[:20]:
        print(f"  differs: {problem}")
    for error in document.get("mutator_errors") or []:
        print(f"  mutator: {error}")
    if "error" in document:
        print(f"ERROR: {document['error']}")
    for name, ok in document.get("checks", {}).items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
