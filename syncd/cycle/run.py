"""One synchronisation cycle as a sequence of named stages: read, prepare, plan, apply, conclude."""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.config import Config
from syncd.core.mapping import MappingOptions, selected_attributes
from syncd.core.operations import Outcome, Plan, UpdateUser, defer, restrict_plan
from syncd.core.planner import PlanOptions, plan
from syncd.core.records import Presence, user_select
from syncd.core.snapshot import labels_of
from syncd.core.targets import build_targets
from syncd.cycle.apply import Applier, Progress
from syncd.cycle.context import about, cycle_context
from syncd.cycle.prepare import PlanningInputs, prepare
from syncd.cycle.preview import preview_matching
from syncd.cycle.read import DirectoryRead, read_directory
from syncd.cycle.report import CycleReport, Findings, verdict
from syncd.cycle.tally import ApplyResult
from syncd.errors import SyncdError
from syncd.ports import DirectorySource, ScimTarget, State

log = logging.getLogger("syncd.cycle")


@dataclass(frozen=True)
class CycleRequest:
    """What was asked of this cycle."""

    full: bool = False  # read the whole directory
    dry_run: bool = False  # read and plan, send nothing, change no state
    allow_deletions: bool = False  # release the deletion guard once
    # `syncd apply`: only operations of this reviewed plan that the fresh plan still contains
    approved: list[dict[str, Any]] | None = None
    now: datetime | None = None
    # A dry run that also reads Learnster to show how each create will be matched (`plan`)
    preview_matching: bool = False


@dataclass
class _Saves:
    """Snapshot writes put off until the first rounds of requests are out (a delta's few)."""

    pieces: list[Callable[[], None]] = field(default_factory=list)

    def finish(self) -> None:
        while self.pieces:  # nothing was sent, or too little to hide them behind
            self.pieces.pop(0)()


def config_fingerprint(config: Config) -> str:
    """What, besides the directory and the ledger, decides a plan: if it changes, replan."""
    relevant = {
        "tenant_url": config.learnster.tenant_url,
        "scope": [
            config.scope.mode,
            config.scope.groups,
            config.scope.application,
            config.scope.nested,
            [[str(c) for c in f.clauses] for f in config.scope.filters],
        ],
        "sync_groups": config.scope.effective_sync_groups,
        "sync": [
            config.sync.on_hard_delete,
            config.sync.phone_default_region,
            config.sync.member_batch_size,
        ],
        "mapping": sorted(config.user_mapping_overrides.items()),
    }
    return json.dumps(relevant, sort_keys=True)


async def run_cycle(
    config: Config,
    state: State,
    source: DirectorySource,
    open_target: Callable[[], ScimTarget],
    request: CycleRequest | None = None,
    *,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> CycleReport:
    """One synchronisation cycle. The caller holds the state's lock and closes ``source``;
    ``open_target`` is called only when there is something to send (and closed here)."""
    cycle = _Cycle(config, state, source, open_target, request or CycleRequest(), cancel, progress)
    return await cycle.run()


class _Cycle:
    def __init__(
        self,
        config: Config,
        state: State,
        source: DirectorySource,
        open_target: Callable[[], ScimTarget],
        request: CycleRequest,
        cancel: threading.Event | None,
        progress: Progress | None,
    ) -> None:
        self.config = config
        self.state = state
        self.source = source
        self.open_target = open_target
        self.request = request
        self.cancel = cancel
        self.progress = progress
        self.now = request.now or datetime.now(UTC)
        self.dry_run = request.dry_run
        self.report = CycleReport(dry_run=request.dry_run)
        self.run_id: int | None = None

    async def run(self) -> CycleReport:
        started = time.monotonic()
        report = self.report
        if not self.dry_run:
            mode = "full" if self.request.full else "delta"
            self.run_id = self.state.runs.start(mode, False, self.config.state_log_days)
            report.run_id = self.run_id
        try:
            with cycle_context(self.run_id):
                await self._stages()
        except SyncdError as exc:  # configuration, credentials, connectivity: nothing more
            self._conclude(Findings(error=exc))
        finally:
            report.duration_seconds = time.monotonic() - started
            report.graph_requests = self.source.requests
            if self.run_id is not None:
                counts = {kind: dict(c) for kind, c in report.outcomes.items()}
                self.state.runs.finish(
                    self.run_id, counts, int(report.exit_code), report.message or report.summary()
                )
        return report

    async def _stages(self) -> None:
        fingerprint = config_fingerprint(self.config)
        read = await self._read(fingerprint)
        if read.quiet:
            # Planning is a pure function of snapshot, ledger and configuration; none of them
            # changed since a cycle that converged, so the plan would be empty.
            if not self.dry_run:
                self.state.snapshot.save_delta_links(read.links)
            self.report.planned = False
            return
        if not self.dry_run:
            self.state.ledger.set_converged(None)
        prepared = prepare(self.state, read, self.config)
        read, inputs = prepared.read, prepared.inputs
        self.report.incremental = inputs.incremental
        self.report.labels = labels_of(read.users, read.groups)
        saves = self._snapshot_saves(read)
        if self.dry_run:  # for people reading the plan: who is a guest
            self.report.guests = {uid for uid, e in read.users.items() if e.record.is_guest}
        self._plan(read, inputs, saves)
        if self.dry_run and self.request.preview_matching:
            self.report.matching = await preview_matching(
                self.report.plan, self.open_target, self.state.ledger, self.config.sync.match_by
            )
        if self.dry_run:
            return
        applied = await self._apply(read, inputs, saves)
        self._conclude(self._findings(read, applied), fingerprint)

    # -- read ----------------------------------------------------------------------------------

    async def _read(self, fingerprint: str) -> DirectoryRead:
        state, config = self.state, self.config
        full = self.request.full or _full_read_due(
            state.snapshot.last_full_read(), config, self.now
        )
        # Steady state: the last cycle converged under this configuration, so only what the
        # delta touches can need an operation.
        steady = (
            self.request.approved is None
            and state.ledger.converged() == fingerprint
            and not state.ledger.groups_in_doubt()
        )
        cpu = time.process_time()
        read = await read_directory(
            self.source,
            state.snapshot,
            full=full,
            select=user_select(
                [
                    *config.scope.filter_attributes,
                    *selected_attributes(config.user_mapping_overrides),
                ]
            ),
            application=config.scope.application if config.scope.mode == "assigned" else "",
            may_skip=steady,
            # Mode groups names its groups: only the whole directory resolves the names.
            slice_only=steady
            and config.scope.mode != "groups"
            and config.scope.effective_sync_groups != "with_members",
        )
        self.report.mode = "full" if read.full else "delta"
        self.report.graph_requests = self.source.requests
        self.report.timings["read_cpu_seconds"] = time.process_time() - cpu
        self.report.problems.extend(read.problems)
        self.report.notes.extend(read.notes)
        return read

    def _snapshot_saves(self, read: DirectoryRead) -> _Saves:
        """Write the snapshot now, or schedule it to be written while requests are out.

        Safe at any point of the cycle: the ledger, not the snapshot, says what Learnster
        holds; an interrupted cycle is planned again from it. A whole directory is saved before
        planning, so its records can be dropped as they are mapped. A delta's few records are
        written while the first round of requests is out (~45 ms at 100,000 users, measured),
        and the WAL checkpoint that makes due while the second one is.
        """
        snapshot = self.state.snapshot
        if self.dry_run:
            return _Saves()
        if read.incremental:
            update = functools.partial(
                snapshot.update, read.users, dict(read.groups), read.links, read.assignments
            )
            return _Saves([update, snapshot.settle])
        snapshot.replace(
            read.users,
            read.groups,
            read.links,
            full_read_at=self.now if read.full and read.complete else None,
            selection=read.selection,
            assignments=read.assignments,
        )
        return _Saves()

    # -- plan ----------------------------------------------------------------------------------

    def _plan(self, read: DirectoryRead, inputs: PlanningInputs, saves: _Saves) -> None:
        config, report = self.config, self.report
        cpu = time.process_time()
        targets = build_targets(
            read.users,
            read.groups,
            inputs.scope,
            inputs.ledger_users,
            MappingOptions(config.sync.phone_default_region, config.user_mapping_overrides),
            report_for=None if read.full else read.changed_users,
            member_candidates=inputs.member_candidates,
            consume=not self.dry_run and not saves.pieces,
        )
        report.problems.extend(targets.problems)
        for problem in report.problems:
            level = logging.ERROR if problem.severity == "error" else logging.WARNING
            log.log(level, "%s", problem, extra=about(problem.object_id))
        report.plan = plan(
            targets.users,
            inputs.ledger_users,
            targets.groups,
            inputs.ledger_groups,
            self._plan_options(read),
            linked_users=inputs.linked_users,
            linked_count=inputs.linked_count,
        )
        if self.request.approved is not None:
            restricted = restrict_plan(report.plan, self.request.approved)
            report.plan, report.stale = restricted.plan, restricted.stale
        if not self.dry_run:
            deferral = defer(report.plan, self.state.ledger.deferred(self.now))
            report.plan = deferral.plan
            for op in deferral.deferred:
                report.count(op.kind, Outcome.DEFERRED)
        report.held = len(report.plan.held)
        report.planned_counts = report.plan.counts()
        report.timings["plan_cpu_seconds"] = time.process_time() - cpu
        if self.dry_run:
            report.reasons = deactivation_reasons(report.plan, read, inputs)

    def _plan_options(self, read: DirectoryRead) -> PlanOptions:
        sync = self.config.sync
        return PlanOptions(
            allow_removals=read.complete,
            on_hard_delete=sync.on_hard_delete,
            max_deletions=sync.max_deletions,
            max_deletion_percent=sync.max_deletion_percent,
            allow_deletions=self.request.allow_deletions,
            member_batch_size=sync.member_batch_size,
        )

    # -- apply ---------------------------------------------------------------------------------

    async def _apply(
        self, read: DirectoryRead, inputs: PlanningInputs, saves: _Saves
    ) -> ApplyResult:
        report = self.report
        read.groups.clear()  # saved, or copied for the save to come; applying needs labels
        phases, report.plan = list(report.plan.phases), Plan(held=report.plan.held)
        try:
            # After a cycle whose tag creates were retried, check those tags once more even
            # when nothing else is to be sent (the only reads a quiet cycle may make).
            if not phases and not self.state.ledger.groups_in_doubt():
                return ApplyResult()
            target = self.open_target()
            applier = Applier(
                target,
                self.state.ledger,
                self.state.runs,
                report.labels,
                cancel=self.cancel,
                progress=self.progress,
                run_id=self.run_id,
                now=self.now,
                groups=inputs.ledger_groups,
                lazy=inputs.incremental,
                match_by=self.config.sync.match_by,
                batch_size=self.config.sync.member_batch_size,
            )
            try:
                await applier.apply(phases, self.config.learnster.max_concurrency, saves.pieces)
            finally:
                await target.aclose()
                report.absorb(applier.result)  # what was done, even if a bug stopped it
        finally:
            saves.finish()
        if applier.result.stopped is None:
            report.timings["apply_cpu_seconds"] = applier.result.cpu_seconds
        return applier.result

    # -- conclude ------------------------------------------------------------------------------

    def _findings(self, read: DirectoryRead, applied: ApplyResult) -> Findings:
        report, sync = self.report, self.config.sync
        guard = (
            f"deletion guard: {report.held} deactivations/deletions held (max_deletions = "
            f"{sync.max_deletions}, max_deletion_percent = {sync.max_deletion_percent}); "
            "review them with 'syncd plan', release them once with "
            "'syncd sync --allow-deletions'"
        )
        return Findings(
            error=applied.stopped,
            held=report.held,
            guard_message=guard,
            read_errors=tuple(read.errors),
            interrupted=report.interrupted,
            quarantined=report.quarantined,
            failures=len(report.failures),
        )

    def _conclude(self, findings: Findings, fingerprint: str | None = None) -> None:
        """The verdict; a cycle that ran to its end also records the guard and convergence."""
        report = self.report
        ending = verdict(findings)
        report.exit_code, report.health, report.message = (
            ending.exit_code,
            ending.health,
            ending.message,
        )
        if findings.error is not None or fingerprint is None:
            return
        ledger = self.state.ledger
        self.state.runs.set_guard(report.held, report.message if report.held else "", self.now)
        converged = (
            not findings.read_errors
            and self.request.approved is None
            and not report.failures
            and not report.interrupted
            and not report.quarantined
            and not report.held
            and not report.deferred
            and not ledger.escrows()
        )
        ledger.set_converged(fingerprint if converged else None)


def _full_read_due(last: datetime | None, config: Config, now: datetime) -> bool:
    if config.schedule.full_every_days <= 0:
        return False
    if last is None:
        return True
    return now - last >= timedelta(days=config.schedule.full_every_days)


def deactivation_reasons(
    the_plan: Plan, read: DirectoryRead, inputs: PlanningInputs
) -> dict[str, str]:
    """Why each user a plan deactivates is deactivated, for people reading the plan."""
    reasons: dict[str, str] = {}
    for op in [*the_plan.operations, *the_plan.held]:
        if not isinstance(op, UpdateUser) or not op.deactivates:
            continue
        entry = read.users.get(op.user_id)
        if entry is None:
            reasons[op.user_id] = "is gone from the directory"
        elif entry.presence is Presence.RECYCLED:
            reasons[op.user_id] = "is in the directory's recycle bin"
        elif not entry.record.account_enabled:
            reasons[op.user_id] = "is disabled in the directory"
        else:
            reasons[op.user_id] = inputs.rules.why_out(op.user_id, read.users, read.groups)
    return reasons
