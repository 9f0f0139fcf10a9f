"""What the commands print: reports, plans and status, for people (rich) and as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from syncd.app.health import health_title
from syncd.config import Config
from syncd.core.operations import CreateUser, Operation, operation_to_json
from syncd.cycle.preview import matching_counts
from syncd.cycle.report import CycleReport
from syncd.errors import ExitCode, Health

if TYPE_CHECKING:
    from rich.console import Console


def report_to_json(report: CycleReport) -> dict[str, Any]:
    return {
        "cycle": report.run_id,  # the run of `syncd status --log`, the cycle of JSON log lines
        "mode": report.mode,
        "incremental": report.incremental,
        "dry_run": report.dry_run,
        "exit_code": int(report.exit_code),
        "health": report.health,
        "message": report.message,
        "planned": report.planned_counts,
        # Every operation only where they are the point (plans); a 100,000-user cycle's
        # report would otherwise be as large as its traffic.
        "operations": [_labelled(op, report) for op in report.plan.operations],
        "held": [_labelled(op, report) for op in report.plan.held],
        "outcomes": {kind: dict(c) for kind, c in report.outcomes.items()},
        "failures": [
            {"object": oid, "label": label, "error": error} for oid, label, error in report.failures
        ],
        "problems": [
            {"object": p.object_id, "field": p.field, "message": p.message, "severity": p.severity}
            for p in report.problems
        ],
        "stale": report.stale,
        "matching": _matching_counts(report),
        "notes": report.notes,
        "timings": {k: round(v, 3) for k, v in report.timings.items()},
        "graph_requests": report.graph_requests,
        "scim_requests": report.scim_requests,
        "concurrency": report.sending.as_json() if report.sending else None,
    }


def _labelled(op: Operation, report: CycleReport) -> dict[str, Any]:
    data = operation_to_json(op)
    data["label"] = report.labels.get(data["object"], "")
    if data["object"] in report.matching:
        data["match"] = report.matching[data["object"]]
    if data["object"] in report.guests:
        data["guest"] = True
    if data["object"] in report.reasons:
        data["why"] = f"{data['label'] or data['object']} {report.reasons[data['object']]}"
    return data


def _matching_counts(report: CycleReport) -> dict[str, dict[str, int]]:
    users = {op.user_id for op in report.plan.operations if isinstance(op, CreateUser)}
    return matching_counts(report.matching, users)


def _short(value: Any) -> str:
    if value is None:
        return "—"
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def print_plan(report: CycleReport, console: Console, title: str = "") -> None:
    """Every operation, one attribute change per line (lines, so nothing is cut to fit)."""
    title = title or f"Plan ({report.mode} read)"
    for note in report.notes:
        console.print(f"note: {note}", soft_wrap=True, markup=False)
    console.print(f"[bold]{title}: {len(report.plan)} operations[/]")
    for op in report.plan.operations:
        data = _labelled(op, report)
        label = f"{data['label'] or '?'} ({data['object']})"
        if data.get("guest"):
            label += " guest"
        if "match" in data:
            label += f" [{data['match']}]"
        if data["object"] in report.reasons:
            label += f": {report.reasons[data['object']]}"
        if "attributes" in data:
            console.print(f"  {op.kind:<15} {label}", soft_wrap=True, markup=False)
            for path, value in sorted(data["attributes"].items()):
                console.print(f"      {path} = {_short(value)}", soft_wrap=True, markup=False)
        elif data.get("changes"):
            console.print(f"  {op.kind:<15} {label}", soft_wrap=True, markup=False)
            for change in data["changes"]:
                console.print(
                    f"      {change['path']}: {_short(change['old'])} → {_short(change['new'])}",
                    soft_wrap=True,
                    markup=False,
                )
        elif "members" in data:
            shown = ", ".join(data["members"][:5]) + (" …" if len(data["members"]) > 5 else "")
            console.print(
                f"  {op.kind:<15} {label}: {len(data['members'])} users ({shown})",
                soft_wrap=True,
                markup=False,
            )
        else:
            console.print(
                f"  {op.kind:<15} {label} {data.get('displayName', '')}".rstrip(),
                soft_wrap=True,
                markup=False,
            )
    if report.plan.held:
        console.print(f"[yellow]{len(report.plan.held)} removals held by the deletion guard[/]")
    for kind, counts in _matching_counts(report).items():
        shown = ", ".join(f"{n} {how}" for how, n in counts.items())
        console.print(f"Matching in Learnster, {kind}: {shown}", soft_wrap=True, markup=False)


def print_report(report: CycleReport, console: Console) -> None:
    verdict = {
        ExitCode.OK: "[green]done[/]",
        ExitCode.PARTIAL: "[yellow]done, some objects failed (in retry)[/]",
        ExitCode.GUARD: "[red]stopped by a safety guard[/]",
        ExitCode.AUTH: f"[red]{health_title(report.health or Health.CONNECTION)}[/]",
    }.get(report.exit_code, str(report.exit_code))
    if report.dry_run:
        console.print(f"dry run ({report.mode} read): nothing sent, no state changed")
    elif report.mode == "provision":
        console.print(f"provision: {verdict}")
        console.print(f"  {report.summary()}")
    else:
        console.print(f"cycle ({report.mode} read): {verdict}")
        console.print(f"  {report.summary()}")
    if report.failures:
        for oid, label, error in report.failures[:20]:
            console.print(f"  failed {label} ({oid}): {error}", markup=False, soft_wrap=True)
        if len(report.failures) > 20:
            console.print(f"  … and {len(report.failures) - 20} more (see 'syncd status')")
    if report.message:
        console.print(f"  {report.message}", markup=False, soft_wrap=True)
    if not report.dry_run:
        for note in report.notes:
            console.print(f"  note: {note}", markup=False, soft_wrap=True)


@dataclass
class Status:
    """Everything ``syncd status`` shows, read in one go."""

    counts: dict[str, int]
    next_run: datetime | None
    guard: dict[str, Any] | None
    health: dict[str, Any] | None
    runs: list[Any]
    escrows: list[Any]
    log_rows: list[Any] | None
    drifts: list[Any] | None
    labels: dict[str, str]  # object id -> UPN or group name, for the drift lines

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "next_run": self.next_run.isoformat() if self.next_run else None,
            "guard": self.guard,
            "health": self.health,
            "log": None if self.log_rows is None else [r.to_json() for r in self.log_rows],
            "drift": None if self.drifts is None else [d.__dict__ for d in self.drifts],
            "runs": [r.to_json() for r in self.runs],
            "escrows": [e.to_json() for e in self.escrows],
        }


def print_status(config: Config, status: Status, console: Console) -> None:
    """``syncd status`` for people: state, guard, last cycles, escrows, then log and drift."""
    _print_state(config, status, console)
    _print_runs(status, console)
    if status.log_rows is not None:
        _print_log(status.log_rows, config.state_log_days, console)
    if status.drifts is not None:
        _print_drift(status.drifts, status.labels, console)


def _print_state(config: Config, status: Status, console: Console) -> None:
    counts = status.counts
    console.print(
        f"linked: {counts['users_linked']} users, {counts['groups_linked']} groups · "
        f"snapshot: {counts['snapshot_users']} users, {counts['snapshot_groups']} groups"
    )
    if status.next_run:
        console.print(
            f"next scheduled cycle: {status.next_run:%Y-%m-%d %H:%M %Z} "
            f"(cron {config.schedule.cron!r}, {config.schedule.timezone})",
            markup=False,
        )
    health = status.health
    if health and health.get("state") != "ok":
        console.print(
            f"health: {health['state']} since {health['since']}: {health.get('message', '')}",
            style="red",
            soft_wrap=True,
            markup=False,
        )
    guard = status.guard
    if guard:
        console.print(
            f"deletion guard holds {guard['held']} removals since {guard['since']}: "
            f"{guard['message']}",
            style="red",
            soft_wrap=True,
            markup=False,
        )
    else:
        console.print("deletion guard: clear")


def _print_runs(status: Status, console: Console) -> None:
    from rich.table import Table

    table = Table(title="Last cycles")
    for column in ("started", "finished", "mode", "exit", "result"):
        table.add_column(column)
    for run in status.runs:
        table.add_row(
            f"{run.started_at:%Y-%m-%d %H:%M:%S}",
            f"{run.finished_at:%H:%M:%S}" if run.finished_at else "running",
            run.mode,
            "" if run.exit_code is None else str(run.exit_code),
            run.message,
        )
    console.print(table)
    if not status.escrows:
        console.print("no objects in retry")
        return
    # Plain lines, not a table: an error detail must never be cut to fit a terminal.
    console.print(f"[bold]In retry (escrow): {len(status.escrows)}[/]")
    for e in status.escrows:
        console.print(
            f"  {e.label} ({e.object_id}) · {e.operation} · attempt {e.attempts} · "
            f"next retry {e.next_retry_at:%Y-%m-%d %H:%M} UTC",
            soft_wrap=True,
        )
        console.print(f"      error: {e.error}", soft_wrap=True, markup=False)


def _print_log(log_rows: list[Any], keep_days: float, console: Console) -> None:
    console.print(
        f"[bold]Provisioning log ({len(log_rows)} latest; lines are kept {keep_days:g} days, "
        "\\[state] log_days)[/]"
    )
    for row in reversed(log_rows):
        console.print(
            f"  {row.at:%Y-%m-%d %H:%M:%S} run {row.run_id} {row.operation} {row.label} "
            f"({row.object_id}): {row.outcome}" + (f": {row.detail}" if row.detail else ""),
            soft_wrap=True,
            markup=False,
        )


def _print_drift(drifts: list[Any], labels: dict[str, str], console: Console) -> None:
    if drifts:
        console.print(f"[bold]Drift: {len(drifts)} differences made in Learnster[/]")
    else:
        console.print("no drift: Learnster holds what syncd sent")
    for d in drifts:
        console.print(
            f"  {d.kind} {labels.get(d.object_id, '?')} ({d.object_id}) {d.path}: "
            f"sent {_short(d.sent)}, Learnster has {_short(d.found)}",
            soft_wrap=True,
            markup=False,
        )
