"""CycleReport, and the verdict table: which exit code, health and message a cycle ends with."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from syncd.core.limiter import LimiterState
from syncd.core.operations import Outcome, Plan
from syncd.core.records import Problem
from syncd.cycle.tally import QUARANTINE_FAILURE_SHARE, ApplyResult, Failure
from syncd.errors import ExitCode, GraphReadError, Health, SyncdError

QUARANTINE_MESSAGE = (
    "quarantine: more than {share:.0%} of the operations failed, so the rest were not sent; "
    "see 'syncd status' for the errors"
)


@dataclass
class CycleReport:
    """What one cycle did: for the CLI, status, metrics and tests."""

    mode: str = "delta"
    dry_run: bool = False
    plan: Plan = field(default_factory=Plan)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    held: int = 0
    graph_requests: int = 0
    scim_requests: dict[str, int] = field(default_factory=dict)
    sending: LimiterState | None = None  # how Learnster was sent to (None: nothing was)
    exit_code: ExitCode = ExitCode.OK
    health: Health | None = Health.OK  # None: this run says nothing about health
    message: str = ""
    labels: dict[str, str] = field(default_factory=dict)  # object id -> UPN or group name
    stale: list[dict[str, Any]] = field(default_factory=list)  # `apply`: reviewed, now outdated
    duration_seconds: float = 0.0
    interrupted: bool = False  # stopped (SIGTERM) before every operation was sent
    quarantined: bool = False  # most operations failed: the rest were not sent
    planned: bool = True  # False: nothing changed since a converged cycle, nothing to plan
    planned_counts: dict[str, int] = field(default_factory=dict)  # operations by kind
    timings: dict[str, float] = field(default_factory=dict)  # CPU seconds by stage
    incremental: bool = False  # planned from the records the delta touched, not everything
    # Dry runs: how each create will be matched in Learnster, and which users are guests.
    matching: dict[str, str] = field(default_factory=dict)
    guests: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)  # for people: how this cycle read and why
    reasons: dict[str, str] = field(default_factory=dict)  # dry runs: why a user is deactivated
    run_id: int | None = None  # the run log's id of this cycle (None: a dry run)

    def count(self, kind: str, outcome: Outcome) -> None:
        self.outcomes.setdefault(kind, Counter())[outcome] += 1

    def absorb(self, applied: ApplyResult) -> None:
        """Take in what the apply stage did."""
        for kind, counter in applied.outcomes.items():
            self.outcomes.setdefault(kind, Counter()).update(counter)
        self.failures.extend(applied.failures)
        self.interrupted = self.interrupted or applied.interrupted
        self.quarantined = self.quarantined or applied.quarantined
        self.scim_requests = applied.scim_requests
        self.sending = applied.sending

    def summary(self) -> str:
        parts = [
            f"{kind} {sum(c.values())}" + (f" ({c['failed']} failed)" if c.get("failed") else "")
            for kind, c in sorted(self.outcomes.items())
        ]
        return ", ".join(parts) or "nothing to do"

    @property
    def deferred(self) -> bool:
        """Whether operations were held back because their escrow's retry is not due yet."""
        return any(Outcome.DEFERRED in c for c in self.outcomes.values())


@dataclass(frozen=True)
class Findings:
    """What a cycle found that decides how it ends."""

    error: SyncdError | None = None  # what ended the cycle early (credentials, configuration)
    held: int = 0  # removals held by the deletion guard
    guard_message: str = ""
    read_errors: tuple[GraphReadError, ...] = ()  # the Graph read did not complete
    interrupted: bool = False
    quarantined: bool = False
    failures: int = 0


@dataclass(frozen=True)
class Verdict:
    exit_code: ExitCode
    health: Health | None
    message: str


def _error_message(f: Findings) -> str:
    if isinstance(f.error, GraphReadError):
        return f"directory read incomplete, nothing applied: {f.error}"
    return str(f.error)


def _incomplete_read(f: Findings) -> str:
    return (
        "the Graph read did not complete, so no deactivation or deletion was planned "
        f"(creates and updates of what was read were applied): "
        f"{'; '.join(str(e) for e in f.read_errors)}"
    )


def _quarantine(f: Findings) -> str:
    return QUARANTINE_MESSAGE.format(share=QUARANTINE_FAILURE_SHARE)


def _error_exit(f: Findings) -> ExitCode | None:
    return f.error.exit_code if f.error is not None else None


def _error_health(f: Findings) -> Health | None:
    return f.error.health if f.error is not None else None


def _const(value: Any) -> Callable[[Findings], Any]:
    return lambda f: value


@dataclass(frozen=True)
class Rule:
    """One row of the verdict table; a column that gives None leaves it to a later row."""

    holds: Callable[[Findings], bool]
    exit_code: Callable[[Findings], ExitCode | None]
    health: Callable[[Findings], Health | None]
    message: Callable[[Findings], str | None]


_NONE = _const(None)

# How a cycle ends, strongest first: the exit code, the health and the message are each those
# of the first row that holds and gives one. An error that ended the cycle gives its own class's
# exit code and health. Quarantine overrides the health whatever else holds: it says why so
# much failed.
RULES: tuple[Rule, ...] = (
    Rule(lambda f: f.error is not None, _error_exit, _error_health, _error_message),
    Rule(
        lambda f: f.held > 0,
        _const(ExitCode.GUARD),
        _const(Health.GUARD),
        lambda f: f.guard_message,
    ),
    Rule(
        lambda f: bool(f.read_errors), _const(ExitCode.AUTH), _const(Health.GRAPH), _incomplete_read
    ),
    Rule(
        lambda f: f.interrupted,
        _NONE,
        _NONE,
        _const("stopped on request; the operations not yet sent follow next cycle"),
    ),
    Rule(lambda f: f.quarantined, _NONE, _NONE, _quarantine),
    Rule(lambda f: f.failures > 0, _const(ExitCode.PARTIAL), _const(Health.PARTIAL), _NONE),
    Rule(lambda f: True, _const(ExitCode.OK), _const(Health.OK), _const("")),
)


def verdict(findings: Findings) -> Verdict:
    """How a cycle with these findings ends (see RULES)."""
    holding = [rule for rule in RULES if rule.holds(findings)]
    exit_code = next(c for r in holding if (c := r.exit_code(findings)) is not None)
    message = next(m for r in holding if (m := r.message(findings)) is not None)
    health = next((h for r in holding if (h := r.health(findings)) is not None), None)
    if findings.quarantined:
        health = Health.QUARANTINE
    elif findings.error is not None:
        health = findings.error.health
    return Verdict(exit_code, health, message)
