"""A soak of ``syncd run --every N``: many short cycles while the tenant changes and faults come.

The fake Graph and the fake Learnster run in this process (``FakeGraph``, ``FakeLearnster``, as
the tests start them: the mutator needs their Python API, and Learnster is checked by reading
it). syncd runs as its own process, ``python -m syncd run --every N``, with a configuration
written by ``benchmarks/run.py``'s ``_write_config`` plus ``[state] log_days``. After each cycle
(a new finished row in the state database's ``run`` table, read read-only) the soak hands the
cycle to the mutator (``soak_tenant.py``: changes and faults for the next cycle), then samples
the daemon's RSS (VmRSS, VmHWM) and open file descriptors from /proc.

After the last cycle the faults are cleared and cycles run until one converges (the ledger's
mark, no escrow); the daemon gets SIGTERM; Learnster is checked against the final tenant
(``soak_state.learnster_problems``). The exit status is 1 when Learnster differs, the daemon did
not stop cleanly, RSS at the last cycle exceeds RSS at the baseline cycle by more than the
tolerance, the open file descriptors grew, or the provisioning log holds rows older than
``log_days``. Writes a text report and ``--out`` (JSON).

    python -m benchmarks.soak --cycles 30 --every 1 --users 300     # quick check, ~1 minute
    make soak                                                        # 300 cycles, 2 s apart
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.run import ROOT, _compile_syncd, _git, _machine, _sync_env, _write_config
from benchmarks.soak_report import checks, print_report, summary
from benchmarks.soak_state import (
    RunRow,
    Sample,
    converged,
    database_figures,
    fd_kinds,
    finished_runs,
    latest_run,
    learnster_problems,
    log_figures,
    open_fds,
    proc_memory,
)
from benchmarks.soak_tenant import Mutator
from benchmarks.tenant import GRAPH_TOKEN, LEARNSTER_TOKEN
from syncd.fakes.generator import generate_organisation
from syncd.fakes.graph import FakeGraph
from syncd.fakes.learnster import FakeLearnster

DEFAULT_OUT = Path(__file__).resolve().parent / "soak-results.json"


class SoakError(Exception):
    """The soak could not go on (the daemon died or stopped cycling)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description="Soak syncd run --every against the fake tenants while they change and fail.",
    )
    p.add_argument("--cycles", type=int, default=300, help="soak cycles (the initial included)")
    p.add_argument("--every", type=float, default=2.0, help="syncd run --every SECONDS")
    p.add_argument("--users", type=int, default=2000, help="users in the fake tenant")
    p.add_argument("--groups", type=int, default=None, help="groups (default: the generator's)")
    p.add_argument("--latency-ms", type=float, default=5.0, help="fake Learnster latency")
    p.add_argument("--concurrency", type=int, default=8, help="[learnster] max_concurrency")
    p.add_argument("--seed", type=int, default=1, help="tenant, change and fault seed")
    p.add_argument("--changes", type=int, default=3, help="tenant changes between two cycles")
    p.add_argument("--fault-share", type=float, default=0.5, help="share of cycles given one fault")
    p.add_argument(
        "--log-days",
        type=float,
        default=0.002,
        help="[state] log_days (0.002 days = 173 s: the provisioning log is pruned mid-soak)",
    )
    p.add_argument("--baseline", type=int, default=20, help="the cycle RSS and fds compare with")
    p.add_argument(
        "--rss-tolerance-mb",
        type=float,
        default=8.0,
        help="how much RSS at the last cycle may exceed RSS at the baseline cycle",
    )
    p.add_argument(
        "--settle-timeout",
        type=float,
        default=900.0,
        help="seconds cycles may take to converge once the faults are cleared (escrow waits)",
    )
    p.add_argument("--cycle-timeout", type=float, default=300.0, help="seconds one cycle may take")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON file")
    p.add_argument("--keep-dir", action="store_true", help="keep the config, database and log")
    return p


@dataclass
class Soak:
    """One soak's fakes, daemon and what was measured."""

    args: argparse.Namespace
    workdir: Path
    graph: FakeGraph
    learnster: FakeLearnster
    mutator: Mutator
    process: subprocess.Popen[bytes] | None = None
    began: float = field(default_factory=time.monotonic)
    runs: list[RunRow] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    fds: dict[str, dict[str, int]] = field(default_factory=dict)
    met: Counter[str] = field(default_factory=Counter)
    settle: dict[str, Any] = field(default_factory=dict)

    @property
    def database(self) -> Path:
        return self.workdir / "state.db"

    @property
    def log_path(self) -> Path:
        return self.workdir / "syncd.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


def _start_daemon(soak: Soak) -> None:
    args = soak.args
    extra = f"log_days = {args.log_days!r}\n"  # follows database = ... in [state]
    config = _write_config(
        soak.workdir, soak.graph.base_url, soak.learnster.base_url, args.concurrency, extra
    )
    env = _sync_env()
    _compile_syncd(env)
    command = [sys.executable, "-m", "syncd", "run", "--every", f"{args.every:g}"]
    with soak.log_path.open("wb") as log:
        soak.process = subprocess.Popen(
            [*command, "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            cwd=ROOT,
        )
    print(f"syncd run --every {args.every:g} (pid {soak.pid}); state in {soak.workdir}")


def _next_run(soak: Soak, after: int) -> RunRow:
    """The first run after ``after`` to finish; SoakError if the daemon dies or stalls."""
    assert soak.process is not None
    deadline = time.monotonic() + soak.args.cycle_timeout
    while True:
        rows = finished_runs(soak.database, after)
        if rows:
            return rows[0]
        if soak.process.poll() is not None:
            raise SoakError(f"syncd run exited with code {soak.process.returncode}")
        if time.monotonic() > deadline:
            raise SoakError(f"no cycle finished within {soak.args.cycle_timeout:g} s")
        time.sleep(0.05)


def _count_met(soak: Soak) -> None:
    """The faults the fakes answered since the last call (their request logs, then cleared)."""
    for request in soak.learnster.requests:
        if request.fault:
            soak.met[f"learnster {request.fault}"] += 1
    soak.learnster.clear_requests()
    for graph_request in soak.graph.requests:
        if graph_request.status >= 429:
            soak.met[f"graph {graph_request.status}"] += 1
    soak.graph.clear_requests()


def _sample(soak: Soak, cycle: int, row: RunRow) -> Sample:
    """The daemon between cycles: a moment after ``row`` finished (its store is closed by then)."""
    time.sleep(min(0.3, soak.args.every / 4))
    rss, hwm = proc_memory(soak.pid)
    fds = open_fds(soak.pid)
    busy = latest_run(soak.database) > row.id
    sample = Sample(cycle, round(time.monotonic() - soak.began, 1), rss, hwm, len(fds), busy)
    if cycle in (soak.args.baseline, soak.args.cycles):
        soak.figures[f"cycle {cycle}"] = database_figures(soak.database)
        soak.fds[f"cycle {cycle}"] = fd_kinds(fds)
    return sample


def _soak_cycles(soak: Soak) -> None:
    after = 0
    for cycle in range(1, soak.args.cycles + 1):
        row = _next_run(soak, after)
        after = row.id
        soak.runs.append(row)
        if cycle < soak.args.cycles:
            soak.mutator.after_cycle(cycle)
        _count_met(soak)
        sample = _sample(soak, cycle, row)
        soak.samples.append(sample)
        if cycle == 1 or cycle % 10 == 0 or cycle == soak.args.cycles:
            print(
                f"cycle {cycle:4d} (run {row.id}, {row.mode}, exit {row.exit_code}): "
                f"RSS {sample.rss_kb / 1024:6.1f} MB, HWM {sample.hwm_kb / 1024:6.1f} MB, "
                f"{sample.fds} fds, {sample.seconds:7.1f} s",
                flush=True,
            )


def _settle(soak: Soak) -> None:
    """Faults cleared: cycles until one that began afterwards converges (or the timeout)."""
    soak.mutator.stop()
    threshold = latest_run(soak.database)  # a run under way now began with faults
    deadline = time.monotonic() + soak.args.settle_timeout
    after, cycles = soak.runs[-1].id, 0
    is_converged, escrows = False, -1
    while True:
        row = _next_run(soak, after)
        after, cycles = row.id, cycles + 1
        _count_met(soak)
        if row.id > threshold:
            is_converged, escrows = converged(soak.database)
            if is_converged or time.monotonic() > deadline:
                break
    soak.settle = {
        "cycles": cycles,
        "converged": is_converged,
        "escrows_left": escrows,
        "last_run": row.id,
        "last_exit_code": row.exit_code,
    }
    print(f"settled after {cycles} more cycles: converged {is_converged}, {escrows} escrows")


def _stop_daemon(soak: Soak) -> dict[str, Any]:
    assert soak.process is not None
    started = time.monotonic()
    soak.process.send_signal(signal.SIGTERM)
    try:
        code = soak.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        soak.process.kill()
        code = soak.process.wait()
    return {"exit_code": code, "seconds": round(time.monotonic() - started, 2)}


def _start_fakes(args: argparse.Namespace) -> tuple[FakeGraph, FakeLearnster]:
    print(f"generating {args.users:,} users ...", flush=True)
    org = generate_organisation(args.users, seed=args.seed, groups=args.groups)
    graph = FakeGraph(org, access_token=GRAPH_TOKEN, fault_seed=args.seed, own_org=True).start()
    learnster = FakeLearnster(token=LEARNSTER_TOKEN, latency_ms=args.latency_ms, seed=args.seed)
    return graph, learnster.start()


def _run(soak: Soak, document: dict[str, Any]) -> None:
    _start_daemon(soak)
    try:
        soak.mutator.start()
        _soak_cycles(soak)
        _settle(soak)
    finally:
        if soak.mutator.is_alive():
            soak.mutator.stop()
        document["daemon_stop"] = _stop_daemon(soak)
    soak.figures["end"] = database_figures(soak.database)
    document["log"] = log_figures(soak.database, soak.args.log_days)
    problems = learnster_problems(soak.graph, soak.learnster, soak.mutator.recycled)
    document["learnster_problems"] = problems
    document["learnster_counts"] = {
        "users": len(soak.learnster.users),
        "active_users": sum(1 for u in soak.learnster.users.values() if u.get("active")),
        "tags": len(soak.learnster.groups),
    }


def _document(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": _machine(),
        "git": _git(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cycles < 2 or not 1 <= args.baseline <= args.cycles or args.every < 1:
        _parser().error("--cycles must be >= 2, --baseline within 1..--cycles, --every >= 1")
    document = _document(args)
    workdir = Path(tempfile.mkdtemp(prefix="syncd-soak-"))
    graph, learnster = _start_fakes(args)
    mutator = Mutator(
        graph, learnster, seed=args.seed, changes_per_cycle=args.changes,
        fault_share=args.fault_share,
    )  # fmt: skip
    soak = Soak(args, workdir, graph, learnster, mutator)
    try:
        _run(soak, document)
    except SoakError as exc:
        document["error"] = str(exc)
        print(f"soak failed: {exc}", file=sys.stderr)
    finally:
        learnster.stop()
        graph.stop()
    document.update(summary(soak))
    document["checks"] = checks(document, args)
    document["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print_report(document, args)
    failed = "error" in document or not all(document["checks"].values())
    if args.keep_dir or failed:
        print(f"config, state database and syncd's log kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"results written to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
