"""End-to-end benchmark: ``syncd sync`` against the fake Graph and the fake Learnster.

Starts both fakes in their own processes (``python -m syncd.fakes ...``), writes a syncd.toml in a
temporary directory, and runs ``python -m syncd sync --json`` as a separate process three times:

1. ``initial``   - the first, full cycle (creates every user and group in Learnster);
2. ``no-change`` - a delta cycle when nothing changed in Entra;
3. ``changed``   - a delta cycle after ``--change-percent`` % of the users got a new jobTitle.

With ``--takeover``, ``takeover`` and ``takeover-again`` follow the initial cycle instead: a new
state database takes over the Learnster it filled, after drift (``benchmarks/takeover.py``).

Each run records wall and CPU seconds and the peak RSS of the syncd process (``os.wait4``), its
exit code, the Graph and SCIM requests it reports, and the ideal time of its SCIM traffic
(requests x latency / concurrency). The fakes' own CPU time is read from /proc when available.
Prints a table and writes the numbers to ``benchmarks/results.json``.

    python -m benchmarks.run --users 2000 --latency-ms 5      # quick check
    make bench                                                # 20,000 users, 50 ms latency
    make bench BENCH_ARGS="--users 100000"                    # the big run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import selectors
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from benchmarks import scope, takeover
from benchmarks.tenant import GRAPH_TOKEN, LEARNSTER_TOKEN, change_users

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"

err = Console(stderr=True, highlight=False)


class BenchmarkError(Exception):
    """The benchmark could not run (a fake did not start, syncd hung, ...)."""


# ---------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    p = _bench_parser(
        argparse.ArgumentParser(
            prog="python -m benchmarks.run",
            description="Benchmark syncd sync end to end against the fake tenants.",
        ),
        change_help="users changed before the third run",
        repeat=("--repeat-changed", 1),
        repeat_help="run the changed cycle this many times (each with other users changed)",
        out_default=DEFAULT_OUT,
    )
    p.add_argument(
        "--takeover",
        action="store_true",
        help="instead of the no-change and changed cycles: a new state database takes over "
        "the Learnster the initial cycle filled, after the directory drifted (takeover.py)",
    )
    return p


def _bench_parser(
    p: argparse.ArgumentParser,
    *,
    change_help: str,
    repeat: tuple[str, int],
    repeat_help: str,
    out_default: Path,
) -> argparse.ArgumentParser:
    """``p`` with the options of a benchmark.

    The fake tenant, its latency, syncd's concurrency, the change and how often it is repeated
    (``repeat``: the option and its default), the results file, the timeouts and ``--keep-dir``.
    """
    p.add_argument("--users", type=int, default=20_000, help="users in the fake tenant")
    p.add_argument("--groups", type=int, default=400, help="groups in the fake tenant")
    p.add_argument(
        "--memberships", type=float, default=5.0, help="average direct memberships per user"
    )
    p.add_argument(
        "--latency-ms", type=float, default=50.0, help="fake Learnster latency per request"
    )
    p.add_argument("--concurrency", type=int, default=16, help="[learnster] max_concurrency")
    p.add_argument(
        "--rate-limit",
        type=float,
        default=0.0,
        help="the fake Learnster's rate limit, requests/s (429 with Retry-After beyond it)",
    )
    p.add_argument(
        "--capacity",
        type=int,
        default=0,
        help="requests the fake Learnster serves at a time at its latency (more queue)",
    )
    p.add_argument(
        "--scope",
        choices=("all", "assigned"),
        default="all",
        help="assigned: the office groups assigned to the Learnster app, two scoping filters",
    )
    p.add_argument(
        "--guests",
        action="store_true",
        help="2 %% B2B guests and scoping attributes in the tenant (--scope assigned implies it)",
    )
    p.add_argument("--seed", type=int, default=1, help="generator and change-selection seed")
    p.add_argument("--change-percent", type=float, default=1.0, help=change_help)
    p.add_argument(repeat[0], type=int, default=repeat[1], help=repeat_help)
    p.add_argument("--out", type=Path, default=out_default, help="results JSON file")
    p.add_argument(
        "--startup-timeout", type=float, default=600.0, help="seconds a fake may take to start"
    )
    p.add_argument(
        "--run-timeout", type=float, default=3600.0, help="seconds one syncd sync may take"
    )
    p.add_argument(
        "--keep-dir", action="store_true", help="keep the temporary directory (config, logs)"
    )
    return p


# ---------------------------------------------------------------------------- processes


@dataclass
class Fake:
    """One fake tenant running in its own process."""

    name: str
    process: subprocess.Popen[bytes]
    stderr_path: Path
    url: str = ""

    def stderr_tail(self, lines: int = 20) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _start_fake(name: str, args: Sequence[str], workdir: Path, timeout: float) -> Fake:
    stderr_path = workdir / f"fake-{name}.stderr.log"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "syncd.fakes", name, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=ROOT,
            bufsize=0,
        )
    fake = Fake(name, process, stderr_path)
    try:
        fake.url = _first_line(fake, time.monotonic() + timeout)
    except BaseException:
        _stop_fake(fake)
        raise
    if not fake.url.startswith("http"):
        _stop_fake(fake)
        raise BenchmarkError(f"fake {name} printed {fake.url!r} instead of its base URL")
    return fake


def _first_line(fake: Fake, deadline: float) -> str:
    """The first stdout line of a fake, or BenchmarkError if it exits or stays silent."""
    assert fake.process.stdout is not None
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fake.process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchmarkError(
                    f"fake {fake.name} printed no URL in time\n{fake.stderr_tail()}".rstrip()
                )
            if selector.select(min(remaining, 0.5)):
                chunk = os.read(fake.process.stdout.fileno(), 4096)
                if not chunk:  # EOF: the process is gone
                    fake.process.wait(timeout=10)
                    raise BenchmarkError(
                        f"fake {fake.name} exited with code {fake.process.returncode} before "
                        f"printing its URL\n{fake.stderr_tail()}".rstrip()
                    )
                buffer += chunk
            elif fake.process.poll() is not None:
                raise BenchmarkError(
                    f"fake {fake.name} exited with code {fake.process.returncode} before "
                    f"printing its URL\n{fake.stderr_tail()}".rstrip()
                )
    return buffer.split(b"\n", 1)[0].decode().strip()


def _stop_fake(fake: Fake, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    process = fake.process
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            err.print(f"[yellow]fake {fake.name} ignored SIGTERM; killing it[/]")
            process.kill()
            process.wait(timeout=timeout)
    if process.stdout is not None:
        process.stdout.close()


def _proc_cpu_seconds(pid: int) -> float | None:
    """user+sys CPU seconds of a running process (Linux /proc), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state) of proc(5): utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_rss_mb(pid: int) -> float | None:
    """Current resident set of a running process in MB (Linux /proc), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class ChildResult:
    exit_code: int
    wall_seconds: float
    user_seconds: float
    sys_seconds: float
    peak_rss_mb: float
    timed_out: bool
    started_at: float  # time.monotonic() just before the child was started


def _run_child(
    cmd: Sequence[str],
    env: dict[str, str],
    stdout: IO[bytes],
    stderr: IO[bytes],
    timeout: float,
    cwd: Path = ROOT,
) -> ChildResult:
    """Run ``cmd`` to completion and reap it with ``os.wait4`` for its own resource usage.

    The wait blocks (a timer kills the child at the timeout): polling would add up to a
    poll interval to every wall time.
    """
    started_at = time.monotonic()
    started = time.perf_counter()
    process = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env, cwd=cwd
    )
    expired = threading.Event()

    def kill() -> None:
        expired.set()
        with contextlib.suppress(ProcessLookupError):
            process.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _pid, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(ChildProcessError):
                os.wait4(process.pid, 0)
            process.returncode = -9
        raise
    finally:
        timer.cancel()
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait
    return ChildResult(
        exit_code=process.returncode,
        wall_seconds=wall,
        user_seconds=usage.ru_utime,
        sys_seconds=usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        timed_out=expired.is_set(),
        started_at=started_at,
    )


def _first_request_at(fake: Fake | None, *, reset: bool = False) -> float | None:
    """The fake Learnster's time.monotonic() of its first request since the last reset."""
    if fake is None or not fake.url:
        return None
    origin = fake.url.split("/scim/", 1)[0]
    request = urllib.request.Request(f"{origin}/_fake/timing", method="DELETE" if reset else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            value = None if reset else json.loads(answer.read()).get("first_request_at")
    except (OSError, ValueError):  # a fake from before /_fake/timing (bench-compare's base)
        return None
    return float(value) if isinstance(value, int | float) else None


# ---------------------------------------------------------------------------- syncd runs


@dataclass
class RunResult:
    name: str
    description: str
    exit_code: int
    wall_seconds: float
    cpu_seconds: float
    user_seconds: float
    sys_seconds: float
    peak_rss_mb: float
    timed_out: bool
    graph_requests: int | None
    scim_requests: dict[str, int]
    scim_total: int
    ideal_seconds: float
    wall_over_ideal: float | None
    first_scim_seconds: float | None  # process start to Learnster's first request
    graph_read_cpu_seconds: float | None  # syncd's own timing of its Graph read
    graph_read_share: float | None  # that CPU time as a share of the wall time
    outcomes: dict[str, dict[str, int]]
    operations: int
    failures: int
    problems: int
    message: str
    fake_cpu_seconds: dict[str, float | None] = field(default_factory=dict)
    fake_rss_mb_after: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None
    # The adaptive limiter at the end of the cycle (syncd's --json "concurrency"), and what
    # a limited Learnster made of it: answers throttled, and the rate achieved over the run.
    concurrency: dict[str, Any] | None = None
    throttled_share: float | None = None
    rate_over_allowed: float | None = None


def _parse_report(stdout_path: Path) -> dict[str, Any] | None:
    text = stdout_path.read_text(errors="replace")
    with contextlib.suppress(ValueError):
        parsed = json.loads(text)
        return parsed if isinstance(parsed, dict) else None
    start = text.find("\n{")  # something printed before the JSON document
    if start >= 0:
        with contextlib.suppress(ValueError):
            parsed = json.loads(text[start + 1 :])
            return parsed if isinstance(parsed, dict) else None
    return None


def _graph_read_cpu_seconds(report: dict[str, Any]) -> float | None:
    """The CPU seconds syncd reports for its Graph read (``timings`` in ``sync --json``)."""
    value = (report.get("timings") or {}).get("read_cpu_seconds")
    return float(value) if isinstance(value, int | float) else None


def _check_alive(fakes: Sequence[Fake]) -> None:
    for fake in fakes:
        if fake.process.poll() is not None:
            raise BenchmarkError(
                f"fake {fake.name} died (exit {fake.process.returncode})\n"
                f"{fake.stderr_tail()}".rstrip()
            )


def _run_error(
    child: ChildResult, report: dict[str, Any] | None, stderr_path: Path, timeout: float
) -> str | None:
    """Why a syncd run gave no usable report (timed out, no JSON), or None."""
    if child.timed_out:
        return f"timed out after {timeout:g} s (killed)"
    if report is None:
        tail = "\n".join(stderr_path.read_text(errors="replace").splitlines()[-20:])
        return f"no JSON report on stdout (exit {child.exit_code})\n{tail}".rstrip()
    return None


def _sync(
    name: str,
    description: str,
    config_path: Path,
    env: dict[str, str],
    workdir: Path,
    args: argparse.Namespace,
    fakes: Sequence[Fake],
    cwd: Path = ROOT,
    label: str | None = None,
) -> RunResult:
    """One ``syncd sync --json`` run once the fakes are known to be alive, told on stderr.

    ``python -m`` imports syncd from ``cwd`` first. ``label`` names the run on stderr
    (default: ``name``).
    """
    err.print(f"syncd sync ({label or name}) ...")
    _check_alive(fakes)
    cmd = [sys.executable, "-m", "syncd", "sync", "--json", "--config", str(config_path)]
    out_path = workdir / f"sync-{name}.stdout.json"
    err_path = workdir / f"sync-{name}.stderr.log"
    cpu_before = {f.name: _proc_cpu_seconds(f.process.pid) for f in fakes}
    learnster = next((f for f in fakes if f.name == "learnster"), None)
    _first_request_at(learnster, reset=True)
    with out_path.open("wb") as out, err_path.open("wb") as errf:
        child = _run_child(cmd, env, out, errf, args.run_timeout, cwd)
    first_request = _first_request_at(learnster)
    fake_cpu: dict[str, float | None] = {}
    for f in fakes:
        before, after = cpu_before[f.name], _proc_cpu_seconds(f.process.pid)
        fake_cpu[f.name] = None if before is None or after is None else round(after - before, 2)
    report = _parse_report(out_path)
    error = _run_error(child, report, err_path, args.run_timeout)
    report = report or {}

    graph_requests = report.get("graph_requests")
    scim = {str(k): int(v) for k, v in (report.get("scim_requests") or {}).items()}
    scim_total = sum(scim.values())
    ideal = _ideal_seconds(scim_total, args)
    concurrency = report.get("concurrency") if isinstance(report.get("concurrency"), dict) else None
    throttled = int(concurrency.get("throttled", 0)) if concurrency else 0
    read_seconds = _graph_read_cpu_seconds(report)
    cpu = child.user_seconds + child.sys_seconds
    run = RunResult(
        name=name,
        description=description,
        exit_code=child.exit_code,
        wall_seconds=round(child.wall_seconds, 3),
        cpu_seconds=round(cpu, 3),
        user_seconds=round(child.user_seconds, 3),
        sys_seconds=round(child.sys_seconds, 3),
        peak_rss_mb=round(child.peak_rss_mb, 1),
        timed_out=child.timed_out,
        graph_requests=graph_requests if isinstance(graph_requests, int) else None,
        scim_requests=dict(sorted(scim.items(), key=lambda kv: (-kv[1], kv[0]))),
        scim_total=scim_total,
        ideal_seconds=round(ideal, 3),
        wall_over_ideal=round(child.wall_seconds / ideal, 3) if ideal > 0 else None,
        first_scim_seconds=(
            None if first_request is None else round(first_request - child.started_at, 3)
        ),
        graph_read_cpu_seconds=read_seconds,
        graph_read_share=(
            round(read_seconds / child.wall_seconds, 3)
            if read_seconds is not None and child.wall_seconds > 0
            else None
        ),
        outcomes={k: dict(v) for k, v in (report.get("outcomes") or {}).items()},
        operations=len(report.get("operations") or ()),
        failures=len(report.get("failures") or ()),
        problems=len(report.get("problems") or ()),
        message=str(report.get("message") or ""),
        fake_cpu_seconds=fake_cpu,
        fake_rss_mb_after={
            f.name: (None if (r := _proc_rss_mb(f.process.pid)) is None else round(r, 1))
            for f in fakes
        },
        error=error,
        concurrency=concurrency,
        throttled_share=round(throttled / scim_total, 4) if scim_total else None,
        rate_over_allowed=(
            round((scim_total - throttled) / child.wall_seconds / args.rate_limit, 3)
            if args.rate_limit and child.wall_seconds > 0
            else None
        ),
    )
    err.print(
        f"  exit {run.exit_code}, {run.wall_seconds:.2f} s wall, "
        f"{run.cpu_seconds:.2f} s CPU, {run.scim_total:,} SCIM requests"
    )
    return run


# ---------------------------------------------------------------------------- setup and report


def _ideal_seconds(scim_total: int, args: argparse.Namespace) -> float:
    """What the requests would take if syncd cost nothing: at the latency, as many at a time
    as Learnster serves (max_concurrency, or its capacity), and no faster than its rate limit."""
    at_once = min(args.concurrency, args.capacity) if args.capacity else args.concurrency
    ideal = scim_total * (args.latency_ms / 1000.0) / max(1, at_once)
    if args.rate_limit:
        ideal = max(ideal, scim_total / args.rate_limit)
    return ideal


def _write_config(
    workdir: Path, graph_url: str, learnster_url: str, concurrency: int, scope: str = ""
) -> Path:
    path = workdir / "syncd.toml"
    path.write_text(
        "\n".join(
            [
                "[graph]",
                'auth = "access_token"',
                'tenant_id = "contoso.example"',
                'client_id = "11111111-1111-1111-1111-111111111111"',
                f"base_url = {json.dumps(graph_url)}",
                "",
                "[learnster]",
                f"tenant_url = {json.dumps(learnster_url)}",
                f"max_concurrency = {concurrency}",
                "timeout_seconds = 60",
                "",
                "[sync]",
                'phone_default_region = "SE"',
                "max_deletions = 0",
                "",
                "[state]",
                f"database = {json.dumps(str(workdir / 'state.db'))}",
                scope,
            ]
        )
    )
    return path


def _sync_env() -> dict[str, str]:
    """The environment of syncd: ours without syncd/systemd settings, plus the two tokens."""
    drop = ("SYNCD_", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_", "INVOCATION_ID")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["SYNCD_GRAPH_ACCESS_TOKEN"] = GRAPH_TOKEN
    env["SYNCD_LEARNSTER_TOKEN"] = LEARNSTER_TOKEN
    return env


def _compile_syncd(env: dict[str, str], tree: Path = ROOT) -> None:
    """Byte-compile the syncd of source tree ``tree`` as pip does when it installs it.

    Run from the source tree under PYTHONDONTWRITEBYTECODE (set on the machines here), every
    syncd run would compile its own modules again: ~40 ms of start-up that an installed
    syncd does not have.
    """
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(tree / "syncd")],
        env=env,
        cwd=tree,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError, IndexError, ValueError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, IndexError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_mb"] = int(line.split()[1]) // 1024
                break
    return info


def _git() -> dict[str, Any]:
    try:
        head = _git_output("rev-parse", "--short", "HEAD")
        dirty = _git_output("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": head, "dirty": bool(dirty)}


def _git_output(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _percent(share: float | None) -> float | None:
    return None if share is None else share * 100


def _console() -> Console:
    """The console the tables go to (stdout)."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=140)  # logs and pipes: no wrapping at 80
    return console


def _title(args: argparse.Namespace) -> str:
    """The tenant, latency, concurrency and machine of a run, as a table's title."""
    return (
        f"syncd sync: {args.users:,} users, {args.groups:,} groups, {args.memberships:g} "
        f"memberships/user, Learnster latency {args.latency_ms:g} ms, concurrency "
        f"{args.concurrency}"
        + (f", Learnster rate limit {args.rate_limit:g}/s" if args.rate_limit else "")
        + (f", Learnster capacity {args.capacity}" if args.capacity else "")
        + f", {os.cpu_count()} CPUs"
    )


def _print_tables(runs: Sequence[RunResult], args: argparse.Namespace) -> None:
    console = _console()
    title = _title(args)
    with_read = any(run.graph_read_share is not None for run in runs)
    table = Table(title=title, title_justify="left")
    columns = ["run", "exit", "wall s", "CPU s", "peak RSS MB", "Graph req", "SCIM req"]
    columns += ["ideal s", "wall/ideal", "to 1st SCIM s"]
    columns += ["Graph read CPU %"] if with_read else []
    columns += ["fake Graph CPU s", "fake Learnster CPU s"]
    columns += ["limit (end)", "mean latency ms", "429 %"]
    limited = bool(args.rate_limit)
    columns += ["rate ÷ allowed"] if limited else []
    table.add_column(columns.pop(0), no_wrap=True)  # run: "takeover-again" in full
    for column in columns:
        table.add_column(column, justify="right")
    for run in runs:
        read = [] if not with_read else [_fmt(_percent(run.graph_read_share), 0)]
        table.add_row(
            run.name,
            str(run.exit_code) + (" (timeout)" if run.timed_out else ""),
            _fmt(run.wall_seconds, 2),
            _fmt(run.cpu_seconds, 2),
            _fmt(run.peak_rss_mb, 0),
            "—" if run.graph_requests is None else f"{run.graph_requests:,}",
            f"{run.scim_total:,}",
            _fmt(run.ideal_seconds, 2),
            _fmt(run.wall_over_ideal, 3),
            _fmt(run.first_scim_seconds, 3),
            *read,
            _fmt(run.fake_cpu_seconds.get("graph"), 1),
            _fmt(run.fake_cpu_seconds.get("learnster"), 1),
            *_limiter_cells(run, limited),
        )
    console.print(table)

    kinds = sorted(
        {k for run in runs for k in run.scim_requests},
        key=lambda k: -max(run.scim_requests.get(k, 0) for run in runs),
    )
    if kinds:
        by_kind = Table(title="SCIM requests by kind", title_justify="left")
        by_kind.add_column("request")
        for run in runs:
            by_kind.add_column(run.name, justify="right")
        for kind in kinds:
            by_kind.add_row(kind, *(f"{run.scim_requests.get(kind, 0):,}" for run in runs))
        console.print(by_kind)
    for what, unit, of_run in (
        ("wall/ideal", "", lambda r: r.wall_over_ideal),
        ("process start to first SCIM request", " s", lambda r: r.first_scim_seconds),
    ):
        values = [v for r in runs if r.name.startswith("changed") and (v := of_run(r))]
        if len(values) > 1:
            console.print(
                f"changed cycles: {what} median {statistics.median(values):.3f}{unit}, "
                f"min {min(values):.3f}, max {max(values):.3f} ({len(values)} runs)"
            )
    for run in runs:
        if run.error:
            console.print(f"[red]{run.name}: {run.error}[/]")
        elif run.exit_code != 0:
            console.print(f"[yellow]{run.name}: exit {run.exit_code}: {run.message}[/]")


def _limiter_cells(run: RunResult, limited: bool) -> list[str]:
    state = run.concurrency or {}
    cells = [
        f"{state['limit']}/{state['ceiling']}" if "limit" in state else "—",
        _fmt(state.get("mean_latency_ms"), 1),
        _fmt(_percent(run.throttled_share), 2),
    ]
    return cells + ([_fmt(run.rate_over_allowed, 3)] if limited else [])


# ---------------------------------------------------------------------------- write bound

MEMBER_BATCH_SIZE = 100  # [sync] member_batch_size: the bench's syncd.toml keeps the default
WRITES = ("POST /Users", "PATCH /Users", "POST /Groups", "PATCH /Groups")


def _write_bound(database: Path, run: RunResult) -> dict[str, int]:
    """The initial cycle's SCIM writes against the issue's bound.

    bound = users + groups + ⌈memberships ÷ member_batch_size⌉ + user PATCHes (managers that
    could not ride in the POST), counted from what syncd's ledger says Learnster now holds.
    """
    with contextlib.closing(sqlite3.connect(database)) as db:
        users = db.execute("SELECT count(*) FROM ledger_user").fetchone()[0]
        groups = db.execute("SELECT count(*) FROM ledger_group").fetchone()[0]
        memberships = db.execute("SELECT count(*) FROM ledger_member").fetchone()[0]
    user_patches = run.scim_requests.get("PATCH /Users", 0)
    return {
        "users": users,
        "groups": groups,
        "memberships": memberships,
        "writes": sum(run.scim_requests.get(kind, 0) for kind in WRITES),
        "bound": users + groups + math.ceil(memberships / MEMBER_BATCH_SIZE) + user_patches,
    }


def _write_bound_text(writes: dict[str, int]) -> str:
    return (
        f"{writes['writes']:,} (bound: {writes['users']:,} users + "
        f"{writes['groups']:,} groups + ⌈{writes['memberships']:,} memberships ÷ "
        f"{MEMBER_BATCH_SIZE}⌉ + user PATCHes = {writes['bound']:,})"
    )


# ---------------------------------------------------------------------------- main


def _new_document(args: argparse.Namespace) -> dict[str, Any]:
    """The results document before the runs: start time, parameters, machine, git commit."""
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": {
            "users": args.users,
            "groups": args.groups,
            "memberships_per_user": args.memberships,
            "latency_ms": args.latency_ms,
            "concurrency": args.concurrency,
            "seed": args.seed,
            "change_percent": args.change_percent,
        },
        "machine": _machine(),
        "git": _git(),
    }


def _write_document(document: dict[str, Any], out: Path, workdir: Path, *, keep: bool) -> None:
    """Write the results (``document`` as JSON), then remove ``workdir`` unless ``keep``."""
    document["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    if keep:
        err.print(f"config and logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the fakes


def _start_graph(args: argparse.Namespace, workdir: Path) -> Fake:
    """The fake Graph with the tenant of ``args``; its stderr goes to ``workdir``."""
    err.print(f"starting the fake Graph ({args.users:,} users) ...")
    graph_args = [
        "--port", "0",
        "--users", str(args.users),
        "--groups", str(args.groups),
        "--memberships", f"{args.memberships:g}",
        "--seed", str(args.seed),
        "--token", GRAPH_TOKEN,
        *(["--guest-share", "0.02", "--scope-attributes"] if _guests(args) else []),
    ]  # fmt: skip
    graph = _start_fake("graph", graph_args, workdir, args.startup_timeout)
    err.print(f"  {graph.url}  (pid {graph.process.pid})")
    return graph


def _guests(args: argparse.Namespace) -> bool:
    return bool(args.guests or args.scope == "assigned")


def _start_learnster(args: argparse.Namespace, workdir: Path, purpose: str = "") -> Fake:
    """A fake Learnster with the latency of ``args``; its stderr goes to ``workdir``."""
    err.print(f"starting the fake Learnster{purpose} (latency {args.latency_ms:g} ms) ...")
    learnster_args = [
        "--port", "0",
        "--token", LEARNSTER_TOKEN,
        "--latency-ms", f"{args.latency_ms:g}",
        "--no-log",
        *(["--rate-limit", f"{args.rate_limit:g}"] if args.rate_limit else []),
        *(["--capacity", str(args.capacity)] if args.capacity else []),
    ]  # fmt: skip
    learnster = _start_fake("learnster", learnster_args, workdir, args.startup_timeout)
    err.print(f"  {learnster.url}  (pid {learnster.process.pid})")
    return learnster


def _change_description(args: argparse.Namespace) -> str:
    return f"delta cycle after {args.change_percent:g} % of users changed jobTitle"


def _change_users_timed(graph_url: str, percent: float, seed: int) -> int:
    """``change_users``, and a line on stderr saying how many and how long it took."""
    started = time.perf_counter()
    count = change_users(graph_url, percent, seed)
    err.print(f"changed the jobTitle of {count:,} users ({time.perf_counter() - started:.1f} s)")
    return count


def _steps(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The cycles of a bench (name, description); ``--takeover``: the first, then takeover.py's."""
    steps = [("initial", "first cycle: full read, every user and group created")]
    if args.takeover:
        return steps
    changed = _change_description(args)
    return [
        *steps,
        ("no-change", "delta cycle, nothing changed in Entra"),
        ("changed", changed),
        *((f"changed-{n}", changed) for n in range(2, args.repeat_changed + 1)),
    ]


def _benchmark(
    args: argparse.Namespace, workdir: Path, document: dict[str, Any]
) -> list[RunResult]:
    fakes: list[Fake] = []
    runs: list[RunResult] = []
    document["runs"] = runs
    try:
        graph = _start_graph(args, workdir)
        fakes.append(graph)
        learnster = _start_learnster(args, workdir)
        fakes.append(learnster)

        scope_toml = ""
        if args.scope == "assigned":
            offices = scope.assign_offices(graph.url)
            err.print(f"assigned {offices} office groups to the Learnster app, with two filters")
            scope_toml = scope.SCOPE_TOML
        config_path = _write_config(workdir, graph.url, learnster.url, args.concurrency, scope_toml)
        env = _sync_env()
        _compile_syncd(env)

        def cycle(name: str, description: str) -> RunResult:
            run = _sync(name, description, config_path, env, workdir, args, fakes)
            runs.append(run)
            if run.error:
                raise BenchmarkError(f"syncd sync ({name}): {run.error}")
            return run

        for name, description in _steps(args):
            if name.startswith("changed"):
                repeat = int(name.partition("-")[2] or 1)
                count = _change_users_timed(graph.url, args.change_percent, args.seed + repeat - 1)
                document["changed_users"] = count
            run = cycle(name, description)
            if name == "initial":
                document["initial_writes"] = _write_bound(workdir / "state.db", run)
        if args.takeover:
            report = document["takeover"] = {}
            urls = (graph.url, learnster.url)
            try:
                takeover.run_takeover(cycle, urls, workdir / "state.db", args, report)
            except (OSError, ValueError, sqlite3.Error) as exc:  # a fake refused a change, ...
                raise BenchmarkError(f"takeover: {exc}") from exc
    finally:
        for fake in reversed(fakes):
            _stop_fake(fake)
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.users < 1 or args.concurrency < 1 or args.repeat_changed < 1 or args.latency_ms < 0:
        _parser().error(
            "--users, --concurrency and --repeat-changed must be >= 1, --latency-ms >= 0"
        )
    if args.takeover and (args.groups < 3 or args.repeat_changed != 1):
        _parser().error("--takeover needs --groups >= 3 and runs no changed cycle")
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    document = _new_document(args)
    workdir = Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    status = 1  # until the benchmark finishes
    try:
        _benchmark(args, workdir, document)
        status = 0
    except BenchmarkError as exc:
        document["error"] = str(exc)
        err.print(f"[red]benchmark failed: {exc}[/]")
    finally:
        runs: list[RunResult] = document.get("runs", [])
        document["runs"] = [run.__dict__ for run in runs]
        _write_document(document, args.out, workdir, keep=args.keep_dir or bool(status))
    if runs:
        _print_tables(runs, args)
    writes = document.get("initial_writes")
    if writes:
        err.print(f"initial SCIM writes {_write_bound_text(writes)}")
    takeover.print_checks(document.get("takeover", {}))
    err.print(f"results written to {args.out}")
    if status == 0 and any(run.exit_code != 0 for run in runs):
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
