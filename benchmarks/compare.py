"""Compare two revisions of syncd: alternating ``syncd sync`` runs on one fake tenant.

Differences between two benchmark runs on one machine are larger than the ones that matter
(~1 %), so the two builds are run in turns against the same fake Graph instead:

1. each revision is checked out (``git worktree add --detach``; ``WORKTREE`` is this checkout as
   it is, uncommitted changes included) and byte-compiled; syncd runs with this checkout's
   interpreter, ``PYTHONPATH`` and cwd set to the revision's tree (checked: ``syncd.__file__``);
2. one fake Graph, and one fake Learnster, config and state database per build;
3. the initial full cycle of each build, then a no-change cycle of each;
4. ``--rounds`` rounds: ``--change-percent`` % of the users get a new jobTitle, then each build
   runs its delta cycle on that change, base first in odd rounds, head first in even ones.

Every run must exit 0, and in every step both builds must send the same SCIM requests (by kind);
a difference is reported as such: the two builds behave differently. Prints a table per build
(initial wall ÷ ideal and peak RSS, no-change wall, min/median/max of the changed rounds) and the
per-round differences head − base in wall ÷ ideal; writes everything to
``benchmarks/compare.json``.

    python -m benchmarks.compare --base HEAD~1 --head HEAD --users 2000 --latency-ms 5 --rounds 4
    make bench-compare COMPARE_ARGS="--base main --head WORKTREE"
"""

from __future__ import annotations

import argparse
import math
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from benchmarks.run import (
    ROOT,
    BenchmarkError,
    Fake,
    RunResult,
    _bench_parser,
    _change_description,
    _change_users_timed,
    _compile_syncd,
    _console,
    _fmt,
    _git_output,
    _new_document,
    _raise_on_sigterm,
    _start_graph,
    _start_learnster,
    _stop_fake,
    _sync,
    _sync_env,
    _title,
    _write_bound,
    _write_bound_text,
    _write_config,
    _write_document,
    err,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "compare.json"
WORKTREE = "WORKTREE"  # --base/--head: this checkout's working tree, uncommitted changes included


# ---------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.compare",
        description="Compare two revisions of syncd by alternating syncd sync runs on one fake "
        "tenant.",
    )
    p.add_argument("--base", default="HEAD", help="the revision compared against [HEAD]")
    p.add_argument(
        "--head",
        default=WORKTREE,
        help=f"the revision measured against it, or {WORKTREE}: this checkout's working tree "
        f"as it is, uncommitted changes included [{WORKTREE}]",
    )
    return _bench_parser(
        p,
        change_help="users changed before each round",
        repeat=("--rounds", 10),
        repeat_help="changed rounds, each running both builds on the same change",
        out_default=DEFAULT_OUT,
    )


# ---------------------------------------------------------------------------- builds


@dataclass
class Build:
    """One revision of syncd with its own Learnster, config and state database."""

    name: str  # "base" or "head"
    rev: str  # as given on the command line
    commit: str  # what it resolved to; for WORKTREE the commit checked out
    subject: str
    changes: list[str]  # WORKTREE: `git status --porcelain -- syncd` lines (what is not HEAD)
    workdir: Path  # config, state database, logs
    tree: Path  # the source tree syncd is imported from
    added: bool = False  # `git worktree add` of tree was started: remove it at the end
    syncd_file: str = ""  # syncd.__file__ as a child process with this build's env imports it
    env: dict[str, str] = field(default_factory=dict)
    config_path: Path | None = None
    learnster: Fake | None = None
    runs: list[RunResult] = field(default_factory=list)
    initial_writes: dict[str, int] | None = None

    @property
    def label(self) -> str:
        short = self.commit[:7]
        if self.rev == WORKTREE:
            return f"{WORKTREE} ({short}{' + changes' if self.changes else ''})"
        return self.rev if self.rev.startswith(short) else f"{self.rev} ({short})"

    def run(self, name: str) -> RunResult | None:
        return next((run for run in self.runs if run.name == name), None)

    def describe(self) -> dict[str, Any]:
        return {
            "rev": self.rev,
            "commit": self.commit,
            "subject": self.subject,
            "uncommitted_changes": self.changes,
            "tree": str(self.tree),
            "syncd_file": self.syncd_file,
            "initial_writes": self.initial_writes,
            "runs": [run.__dict__ for run in self.runs],
        }


def _git_or_fail(what: str, *args: str) -> str:
    try:
        return _git_output(*args)
    except subprocess.CalledProcessError as exc:
        raise BenchmarkError(f"{what}: git {' '.join(args)}: {exc.stderr.strip()}") from exc


def _resolve(name: str, rev: str, workdir: Path) -> Build:
    """The build of ``rev`` (a git revision or WORKTREE); its files go below workdir/name."""
    build_dir = workdir / name
    build_dir.mkdir()
    what = f"--{name} {rev}"
    if rev == WORKTREE:
        commit = _git_or_fail(what, "rev-parse", "HEAD")
        status = _git_or_fail(what, "status", "--porcelain", "--", "syncd")
        changes, tree = [line.strip() for line in status.splitlines()], ROOT
    else:
        commit = _git_or_fail(what, "rev-parse", "--verify", f"{rev}^{{commit}}")
        changes, tree = [], build_dir / "src"
    subject = _git_or_fail(what, "log", "-1", "--format=%s", commit)
    return Build(name, rev, commit, subject, changes, build_dir, tree)


def _prepare(build: Build) -> None:
    """Check the revision out, byte-compile it and make sure its syncd is the one imported."""
    if build.rev != WORKTREE:
        err.print(f"{build.name}: git worktree add --detach {build.tree} {build.commit[:12]}")
        build.added = True  # from here on, also when interrupted
        result = subprocess.run(
            ["git", "worktree", "add", "--detach", str(build.tree), build.commit],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise BenchmarkError(f"git worktree add for {build.name}: {result.stderr.strip()}")
    build.env = {**_sync_env(), "PYTHONPATH": str(build.tree)}
    try:
        _compile_syncd(build.env, build.tree)
    except subprocess.CalledProcessError as exc:
        raise BenchmarkError(
            f"{build.name}: python -m compileall syncd failed (exit {exc.returncode})"
        ) from exc
    # syncd is installed editable into the venv: PYTHONPATH and the cwd (sys.path[0] of
    # `python -m`) must win over its finder, or both builds would run this checkout's code
    result = subprocess.run(
        [sys.executable, "-c", "import syncd; print(syncd.__file__)"],
        env=build.env,
        cwd=build.tree,
        capture_output=True,
        text=True,
        timeout=120,
    )
    build.syncd_file = result.stdout.strip()
    expected = (build.tree / "syncd" / "__init__.py").resolve()
    if result.returncode != 0 or Path(build.syncd_file).resolve() != expected:
        raise BenchmarkError(
            f"{build.name}: the child imports syncd from {build.syncd_file or '?'}, not from "
            f"{expected}\n{result.stderr.strip()}".rstrip()
        )
    err.print(f"  {build.name} = {build.label}: {build.subject}")
    err.print(f"  {build.name} imports {build.syncd_file}")


def _remove_worktree(build: Build) -> None:
    """Remove the worktree ``_prepare`` added, also a half-made one (interrupted add)."""
    if not build.added:
        return
    removed = subprocess.run(
        ["git", "worktree", "remove", "--force", "--force", str(build.tree)],
        cwd=ROOT,
        capture_output=True,
    )
    if removed.returncode != 0:  # the add was interrupted, or the directory is gone
        shutil.rmtree(build.tree, ignore_errors=True)
        listed = subprocess.run(
            ["git", "worktree", "list", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout.splitlines()
        if f"worktree {build.tree}" in listed:  # registered but gone: prune the stale entry
            subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)


# ---------------------------------------------------------------------------- the runs


def _cycle(
    build: Build, name: str, description: str, graph: Fake, args: argparse.Namespace
) -> RunResult:
    assert build.config_path is not None
    assert build.learnster is not None
    label = f"{build.name} {name}"
    fakes = [graph, build.learnster]
    config, env, workdir = build.config_path, build.env, build.workdir
    run = _sync(name, description, config, env, workdir, args, fakes, build.tree, label)
    build.runs.append(run)
    if run.error:
        raise BenchmarkError(f"syncd sync ({label}): {run.error}")
    if run.exit_code != 0:
        raise BenchmarkError(f"syncd sync ({label}) exited with {run.exit_code}: {run.message}")
    return run


def _check_same_requests(name: str, base: RunResult, head: RunResult) -> str | None:
    """None when both runs sent the same SCIM requests (by kind), else what differs (told)."""
    if base.scim_requests == head.scim_requests:
        return None
    kinds = sorted(set(base.scim_requests) | set(head.scim_requests))
    differ = ", ".join(
        f"{kind} {base.scim_requests.get(kind, 0):,} vs {head.scim_requests.get(kind, 0):,}"
        for kind in kinds
        if base.scim_requests.get(kind, 0) != head.scim_requests.get(kind, 0)
    )
    message = (
        f"{name}: base sent {base.scim_total:,} SCIM requests, head {head.scim_total:,} "
        f"({differ}): the two builds behave differently"
    )
    err.print(f"[bold red]MISMATCH {message}[/]")
    return message


def _initial_writes(build: Build, run: RunResult) -> dict[str, int] | None:
    try:
        return _write_bound(build.workdir / "state.db", run)
    except sqlite3.Error as exc:  # another revision's schema
        err.print(f"[yellow]{build.name}: no write bound from its state database: {exc}[/]")
        return None


def _compare(
    args: argparse.Namespace, workdir: Path, document: dict[str, Any], builds: list[Build]
) -> None:
    """The whole comparison; ``builds`` and ``document`` are filled in as it goes."""
    fakes: list[Fake] = []
    rounds: list[dict[str, Any]] = []
    mismatches: list[str] = []
    document["rounds"] = rounds
    document["mismatches"] = mismatches
    try:
        builds.append(_resolve("base", args.base, workdir))
        builds.append(_resolve("head", args.head, workdir))
        for build in builds:
            _prepare(build)
        base, head = builds
        graph = _start_graph(args, workdir)
        fakes.append(graph)
        for build in builds:
            build.learnster = _start_learnster(args, build.workdir, f" of {build.name}")
            fakes.append(build.learnster)
            build.config_path = _write_config(
                build.workdir, graph.url, build.learnster.url, args.concurrency
            )

        steps = [
            ("initial", "first cycle: full read, every user and group created"),
            ("no-change", "delta cycle, nothing changed in Entra"),
        ]
        for name, description in steps:
            base_run, head_run = (_cycle(b, name, description, graph, args) for b in builds)
            if name == "initial":
                for build, run in zip(builds, (base_run, head_run), strict=True):
                    build.initial_writes = _initial_writes(build, run)
            if mismatch := _check_same_requests(name, base_run, head_run):
                mismatches.append(mismatch)

        description = _change_description(args)
        for number in range(1, args.rounds + 1):
            name = f"changed-{number}"
            count = _change_users_timed(graph.url, args.change_percent, args.seed + number - 1)
            order = (base, head) if number % 2 else (head, base)
            runs = {build.name: _cycle(build, name, description, graph, args) for build in order}
            base_run, head_run = runs["base"], runs["head"]
            if mismatch := _check_same_requests(name, base_run, head_run):
                mismatches.append(mismatch)
            rounds.append(
                {
                    "round": number,
                    "first": order[0].name,
                    "changed_users": count,
                    "scim_requests": {"base": base_run.scim_total, "head": head_run.scim_total},
                    "wall_over_ideal": {
                        "base": base_run.wall_over_ideal,
                        "head": head_run.wall_over_ideal,
                    },
                    "difference": _difference(base_run, head_run),
                }
            )
    finally:
        for fake in reversed(fakes):
            _stop_fake(fake)
        for build in builds:
            _remove_worktree(build)


# ---------------------------------------------------------------------------- summary


def _difference(base: RunResult, head: RunResult) -> float | None:
    """head − base in wall ÷ ideal."""
    if base.wall_over_ideal is None or head.wall_over_ideal is None:
        return None
    return round(head.wall_over_ideal - base.wall_over_ideal, 3)


def _spread(values: Sequence[float | None]) -> dict[str, float] | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    return {
        "min": round(min(known), 3),
        "median": round(statistics.median(known), 3),
        "max": round(max(known), 3),
    }


def _sign_test(lower: int, higher: int) -> float | None:
    """Two-sided sign test: the chance of a split at least this uneven if neither is faster."""
    n = lower + higher
    if n == 0:
        return None
    tail = sum(math.comb(n, k) for k in range(min(lower, higher) + 1)) / (1 << n)
    return round(min(1.0, 2 * tail), 3)


def _summary(builds: Sequence[Build], rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for build in builds:
        initial, no_change = build.run("initial"), build.run("no-change")
        changed = [run for run in build.runs if run.name.startswith("changed-")]
        summary[build.name] = {
            "initial_wall_over_ideal": None if initial is None else initial.wall_over_ideal,
            "initial_peak_rss_mb": None if initial is None else initial.peak_rss_mb,
            "no_change_wall_seconds": None if no_change is None else no_change.wall_seconds,
            "changed_wall_over_ideal": _spread([run.wall_over_ideal for run in changed]),
            "changed_wall_seconds": _spread([run.wall_seconds for run in changed]),
            "changed_cpu_seconds": _spread([run.cpu_seconds for run in changed]),
        }
    differences = [d for r in rounds if (d := r["difference"]) is not None]
    base_median = (summary.get("base", {}).get("changed_wall_over_ideal") or {}).get("median")
    spread = _spread(differences)
    lower = sum(d < 0 for d in differences)
    higher = sum(d > 0 for d in differences)
    summary["difference"] = {
        "wall_over_ideal": spread,
        "median_percent_of_base": (
            round(100 * spread["median"] / base_median, 2) if spread and base_median else None
        ),
        "rounds": len(differences),
        "head_lower": lower,
        "head_higher": higher,
        "sign_test_p": _sign_test(lower, higher),
    }
    return summary


def _triple(spread: dict[str, float] | None, digits: int) -> str:
    if spread is None:
        return "—"
    return " / ".join(_fmt(spread[key], digits) for key in ("min", "median", "max"))


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}"


def _print_comparison(
    builds: Sequence[Build], document: dict[str, Any], args: argparse.Namespace
) -> None:
    console = _console()
    summary = document["summary"]
    table = Table(
        title=f"{_title(args)}; {args.rounds} rounds of {args.change_percent:g} % changed",
        title_justify="left",
        caption="changed: min / median / max over the rounds",
        caption_justify="left",
    )
    table.add_column("")
    for build in builds:
        table.add_column(f"{build.name} {build.label}", justify="right")
    rows = [
        ("initial wall/ideal", "initial_wall_over_ideal", 3),
        ("initial peak RSS MB", "initial_peak_rss_mb", 0),
        ("no-change wall s", "no_change_wall_seconds", 2),
        ("changed wall/ideal", "changed_wall_over_ideal", 3),
        ("changed wall s", "changed_wall_seconds", 2),
        ("changed CPU s", "changed_cpu_seconds", 2),
    ]
    for title, key, digits in rows:
        cells = (summary[build.name][key] for build in builds)
        table.add_row(
            title,
            *(_triple(c, digits) if isinstance(c, dict) else _fmt(c, digits) for c in cells),
        )
    console.print(table)

    rounds = document["rounds"]
    if rounds:
        per_round = Table(title="changed rounds (wall/ideal)", title_justify="left")
        for column in ("round", "first", "users changed", "SCIM req", "base", "head"):
            per_round.add_column(column, justify="right")
        per_round.add_column("head − base", justify="right")
        for r in rounds:
            requests = r["scim_requests"]
            per_round.add_row(
                str(r["round"]),
                r["first"],
                f"{r['changed_users']:,}",
                f"{requests['base']:,}"
                + ("" if requests["base"] == requests["head"] else f" ≠ {requests['head']:,}"),
                _fmt(r["wall_over_ideal"]["base"], 3),
                _fmt(r["wall_over_ideal"]["head"], 3),
                _signed(r["difference"]),
            )
        console.print(per_round)
    difference = summary["difference"]
    spread = difference["wall_over_ideal"]
    if spread:
        percent = difference["median_percent_of_base"]
        p = difference["sign_test_p"]
        console.print(
            f"head − base in wall/ideal, paired by round: median {_signed(spread['median'])}"
            + ("" if percent is None else f" ({percent:+.2f} % of base's median)")
            + f", min {_signed(spread['min'])}, max {_signed(spread['max'])}; head lower in "
            f"{difference['head_lower']}, higher in {difference['head_higher']} of "
            f"{difference['rounds']} rounds (sign test p = {_fmt(p, 2)})"
        )
    for mismatch in document.get("mismatches", []):
        console.print(f"[bold red]MISMATCH {mismatch}[/]")
    if document.get("error"):
        console.print(f"[red]benchmark failed: {document['error']}[/]")


# ---------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.users < 1 or args.concurrency < 1 or args.rounds < 1 or args.latency_ms < 0:
        parser.error("--users, --concurrency and --rounds must be >= 1, --latency-ms >= 0")
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    document = _new_document(args)
    document["parameters"]["rounds"] = args.rounds
    workdir = Path(tempfile.mkdtemp(prefix="syncd-compare-"))
    builds: list[Build] = []
    status = 1  # until the comparison finishes
    try:
        _compare(args, workdir, document, builds)
        status = 0
    except BenchmarkError as exc:
        document["error"] = str(exc)
        err.print(f"[red]benchmark failed: {exc}[/]")
    finally:
        document["builds"] = {build.name: build.describe() for build in builds}
        document["summary"] = _summary(builds, document.get("rounds", []))
        _write_document(document, args.out, workdir, keep=args.keep_dir or bool(status))
    if any(build.runs for build in builds):
        _print_comparison(builds, document, args)
    for build in builds:
        if build.initial_writes:
            err.print(f"{build.name} initial SCIM writes {_write_bound_text(build.initial_writes)}")
    err.print(f"results written to {args.out}")
    return 1 if status or document.get("mismatches") else 0


if __name__ == "__main__":
    sys.exit(main())
