"""Wiring: a cycle with the real adapters (Graph, Learnster's SCIM) for the commands and the daemon."""

from __future__ import annotations

import threading

from syncd.adapters.graph import GraphSource
from syncd.adapters.scim import ScimSink
from syncd.config import Config
from syncd.cycle.apply import Progress
from syncd.cycle.report import CycleReport
from syncd.cycle.run import CycleRequest, run_cycle
from syncd.ports import State


async def sync_once(
    config: Config,
    state: State,
    request: CycleRequest | None = None,
    *,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> CycleReport:
    """One cycle against the tenant and Learnster that ``config`` names. The caller holds the
    state's lock (except for a dry run)."""
    source = GraphSource(config)
    runs = state.runs
    learned = runs.learnster_limit()  # read now: the cycle opens the sink only when it sends
    try:
        report = await run_cycle(
            config,
            state,
            source,
            lambda: ScimSink.from_config(config, learned=learned),
            request or CycleRequest(),
            cancel=cancel,
            progress=progress,
        )
    finally:
        await source.aclose()
    if report.sending is not None and report.sending.learned is not None and not report.dry_run:
        runs.set_learnster_limit(report.sending.learned)
    return report
