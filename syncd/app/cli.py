"""The ``syncd`` command line: one function per command, exit codes from syncd.errors."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from syncd.adapters.sqlite import Store
from syncd.app.health import Metrics, after_cycle
from syncd.app.logs import LEVELS, json_lines, under_systemd, use_config_format
from syncd.app.output import Status, print_plan, print_report, print_status, report_to_json
from syncd.app.parser import build_parser
from syncd.app.state import check_state, cmd_state
from syncd.app.status_log import check_log_options, export, log_filter
from syncd.app.wiring import sync_once
from syncd.config import LOG_FORMATS, Config, config_path, load_config
from syncd.core.limiter import LimiterState
from syncd.core.snapshot import labels_of
from syncd.cycle.apply import Progress
from syncd.cycle.report import CycleReport
from syncd.cycle.run import CycleRequest
from syncd.errors import ConfigError, ExitCode, SyncdError
from syncd.schedule import next_runs

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger("syncd")


def _setup_logging(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--log-level and --log-format, else their variables in the environment (checked as
    the options are); [logging] format applies once the configuration is read."""
    from syncd.app.logs import configure_logging

    level, log_format = args.log_level, args.log_format
    for name, value, choices in (
        ("SYNCD_LOG_LEVEL", level, LEVELS),
        ("SYNCD_LOG_FORMAT", log_format, LOG_FORMATS),
    ):
        given = os.environ.get(name, "").strip().lower()
        if value is None and given and given not in choices:
            parser.error(f"{name}={given!r} is not one of: {', '.join(choices)}")
    level = level or os.environ.get("SYNCD_LOG_LEVEL", "").strip() or "info"
    configure_logging(level, log_format or os.environ.get("SYNCD_LOG_FORMAT", "").strip() or None)


def entry() -> NoReturn:
    """The ``syncd`` command: ``main``, then exit without tearing the interpreter down.

    Everything is closed and flushed by then; freeing the modules and objects of a cycle one
    by one only delays the exit (~0.07 s of a small delta cycle, measured with make bench).
    """
    # What the imports made lives as long as the process: keep the collector from walking it
    # again and again (a full collection took ~20 ms of a small delta cycle).
    gc.freeze()
    gc.enable()  # off while the modules were imported (syncd.__main__)
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(parser, args)
    if args.command == "status":
        check_log_options(parser, args)
    try:
        if args.command == "demo":
            from syncd.app.demo import run_demo

            return run_demo(users=args.users, seed=args.seed, console=_console())
        if args.command == "install":
            from syncd.app.install import run_install

            return run_install(
                args.instance,
                args.root,
                force=args.force,
                units_only=args.units_only,
                executable=args.executable,
            )
        if args.command == "run":
            from syncd.app.daemon import Daemon

            daemon = Daemon(config_path(args.config), run_now=args.now, every=args.every)
            use_config_format(daemon.config.log_format)
            return daemon.run()
        config = load_config(config_path(args.config))
        use_config_format(config.log_format)
        if args.command == "sync":
            return _cmd_sync(config, args)
        handler = {
            "plan": _cmd_plan,
            "apply": _cmd_apply,
            "provision": _cmd_provision,
            "status": _cmd_status,
            "check": _cmd_check,
            "reset": _cmd_reset,
            "state": cmd_state,
        }[args.command]
        return handler(config, args, _console())
    except SyncdError as exc:
        if json_lines():  # stderr is a stream of JSON objects: this is one more
            log.error("%s", exc)
        else:
            print(f"syncd: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130


def _console() -> Console:
    # rich is imported only for human output: `syncd sync --json` (timers, scripts) starts
    # ~15 ms sooner without it.
    from rich.console import Console

    return Console(stderr=False, highlight=False)


def _cmd_sync(config: Config, args: argparse.Namespace) -> int:
    store = Store(config.state_database)
    try:
        if args.dry_run:
            request = CycleRequest(full=args.full, dry_run=True)
            report = asyncio.run(sync_once(config, store, request))
        else:
            request = CycleRequest(full=args.full, allow_deletions=args.allow_deletions)
            with store.lock():
                report = _with_progress(
                    lambda progress: sync_once(config, store, request, progress=progress)
                )
                metrics = Metrics() if config.metrics.textfile else None
                after_cycle(config, store, report, datetime.now(UTC), metrics)
    finally:
        store.close()
    if args.json:
        print(json.dumps(report_to_json(report), indent=2, default=str))
    else:
        console = _console()
        if args.dry_run:
            print_plan(report, console)
        print_report(report, console)
    return int(report.exit_code)


def _with_progress(
    cycle: Callable[[Progress | None], Coroutine[Any, Any, CycleReport]],
) -> CycleReport:
    """Run a cycle, with a progress bar on an interactive terminal (never under systemd, nor
    among JSON log lines)."""
    if not (sys.stderr.isatty() and not under_systemd() and not json_lines()):
        return asyncio.run(cycle(None))
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("sending to Learnster", total=None)

        def show(done: int, total: int, sending: LimiterState) -> None:
            line = f"sending to Learnster ({sending.describe()})"
            bar.update(task, completed=done, total=total, description=line)

        return asyncio.run(cycle(show))


def _cmd_plan(config: Config, args: argparse.Namespace, console: Console) -> int:
    store = Store(config.state_database)
    try:
        request = CycleRequest(full=args.full, dry_run=True, preview_matching=True)
        report = asyncio.run(sync_once(config, store, request))
    finally:
        store.close()
    document = report_to_json(report)
    document["plan_format"] = PLAN_FORMAT
    document["tenant_url"] = config.learnster.tenant_url
    document["created_at"] = datetime.now(UTC).isoformat()
    if args.out:
        Path(args.out).write_text(json.dumps(document, indent=2, default=str) + "\n")
    if args.json:
        print(json.dumps(document, indent=2, default=str))
    else:
        print_plan(report, console)
        if report.message:
            console.print(report.message, style="red", markup=False, soft_wrap=True)
    return int(report.exit_code) if report.exit_code == ExitCode.AUTH else 0


PLAN_FORMAT = 1


def _cmd_apply(config: Config, args: argparse.Namespace, console: Console) -> int:
    try:
        document = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the plan {args.file}: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(f"{args.file} is not a plan saved by 'syncd plan --out'") from None
    if not isinstance(document, dict) or document.get("plan_format") != PLAN_FORMAT:
        raise ConfigError(f"{args.file} is not a plan saved by 'syncd plan --out'")
    if document.get("tenant_url") != config.learnster.tenant_url:
        raise ConfigError(
            f"{args.file} was made for {document.get('tenant_url')}, "
            f"not for {config.learnster.tenant_url}"
        )
    operations = document.get("operations", []) + document.get("held", [])
    if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
        raise ConfigError(f"{args.file}: 'operations' is not a list of operations")
    store = Store(config.state_database)
    try:
        with store.lock():
            request = CycleRequest(approved=operations, allow_deletions=args.allow_deletions)
            report = asyncio.run(sync_once(config, store, request))
    finally:
        store.close()
    if args.json:
        print(json.dumps(report_to_json(report), indent=2, default=str))
    else:
        print_report(report, console)
        for op in report.stale:
            console.print(
                f"  stale, skipped {op.get('kind')} {op.get('label') or ''} "
                f"({op.get('object')}): changed since the plan was made",
                soft_wrap=True,
                markup=False,
            )
    return int(report.exit_code)


def _cmd_provision(config: Config, args: argparse.Namespace, console: Console) -> int:
    from syncd.app.provision import provision

    store = Store(config.state_database)
    try:
        with store.lock():
            report = asyncio.run(provision(config, store, args.user))
    finally:
        store.close()
    if args.json:
        print(json.dumps(report_to_json(report), indent=2, default=str))
        return int(report.exit_code)
    if len(report.plan):
        print_plan(report, console, title="Sent to Learnster")
    print_report(report, console)
    return int(report.exit_code)


def _cmd_status(config: Config, args: argparse.Namespace, console: Console) -> int:
    store = Store(config.state_database)
    try:
        where = None if args.log is None else log_filter(store, args.user or args.log, args.since)
        if where is not None and args.format in ("jsonl", "csv"):
            return export(store.runs, where, args.format)
        next_run = next_runs(config.schedule.cron, config.schedule.timezone, datetime.now(UTC), 1)
        status = Status(
            counts=store.counts(),
            next_run=next_run[0] if next_run else None,
            guard=store.runs.guard(),
            health=store.runs.health(),
            runs=store.runs.recent(10),
            escrows=store.ledger.escrows(),
            log_rows=None if where is None else store.runs.entries(100, where=where),
            drifts=asyncio.run(_drift(config, store)) if args.drift else None,
            labels=labels_of(*store.snapshot.load()) if args.drift else {},
        )
    finally:
        store.close()
    if args.json:
        print(json.dumps(status.to_json(), indent=2, default=str))
        return 0
    print_status(config, status, console)
    return 0


async def _drift(config: Config, store: Store) -> list[Any]:
    from syncd.adapters.scim import ScimSink
    from syncd.app.drift import find_drift

    async with ScimSink.from_config(config) as sink:
        return await find_drift(sink, store.ledger.users(), store.ledger.groups())


def _cmd_check(config: Config, args: argparse.Namespace, console: Console) -> int:
    from syncd.adapters.graph import GraphSource
    from syncd.adapters.scim import ScimSink

    async def check() -> None:
        source = GraphSource(config)
        try:
            user = await source.first_user()
            console.print(
                "[green]✓[/] Graph: token acquired, read "
                + (f"user {user.get('userPrincipalName')}" if user else "an empty user list")
            )
            await source.first_group()
            console.print("[green]✓[/] Graph: groups and members readable")
            if config.scope.mode == "assigned":
                assigned = await source.assignments(config.scope.application)
                console.print(
                    f"[green]✓[/] Graph: the Learnster app's assignments readable "
                    f"({len(assigned.users)} users and {len(assigned.groups)} groups assigned)"
                )
        finally:
            await source.aclose()
        async with ScimSink.from_config(
            config, timeout_seconds=min(config.learnster.timeout_seconds, 30), max_attempts=2
        ) as sink:
            await sink.check(str(uuid.uuid4()))
        console.print(
            f"[green]✓[/] Learnster: {config.learnster.tenant_url} answered the test query"
        )

    code = 0
    try:
        asyncio.run(check())
    except SyncdError as exc:
        console.print(f"✗ {exc}", style="red", markup=False, soft_wrap=True)
        code = int(exc.exit_code)
    # Also when a connection failed: the state database is checked on its own.
    return code or check_state(config, console)


def _cmd_reset(config: Config, args: argparse.Namespace, console: Console) -> int:
    store = Store(config.state_database)
    try:
        with store.lock():
            store.snapshot.forget_delta_links()
            store.ledger.clear_escrows()
            store.snapshot.forget_full_read()
            if args.forget_links:
                store.ledger.forget_links()
    finally:
        store.close()
    console.print(
        "provisioning restarted: the next cycle reads the whole directory"
        + (" and re-matches every user by userName" if args.forget_links else "")
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
