"""The apply stage: a plan's phases sent over SCIM, each acknowledgement in the ledger at once."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime

from syncd.core.ledger import LedgerGroup
from syncd.core.limiter import LimiterState
from syncd.core.operations import CreateGroup, CreateUser, Operation, Outcome
from syncd.cycle.context import about
from syncd.cycle.handlers import Handlers
from syncd.cycle.links import Links
from syncd.cycle.matching import BY_USER_NAME, MATCH_BY_LISTING_ABOVE, Matcher
from syncd.cycle.tally import ApplyResult, Tally
from syncd.errors import ScimError, StopCycle, Unreachable
from syncd.ports import LedgerRepository, RunLog, ScimTarget

log = logging.getLogger("syncd.cycle")

# Operations done, operations planned, and how Learnster is being sent to (for the line).
Progress = Callable[[int, int, LimiterState], None]


class Applier:
    """Applies a plan's operations over SCIM and records each acknowledgement as it happens."""

    def __init__(
        self,
        target: ScimTarget,
        ledger: LedgerRepository,
        runs: RunLog,
        labels: Mapping[str, str],
        *,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
        run_id: int | None = None,
        now: datetime | None = None,
        groups: Mapping[str, LedgerGroup] | None = None,
        lazy: bool = False,
        match_by: Sequence[str] = (BY_USER_NAME,),
        batch_size: int = 100,
    ) -> None:
        self.target = target
        self.ledger = ledger
        self.cancel = cancel
        self.progress = progress
        self.links = Links(ledger, groups, lazy=lazy)
        self.tally = Tally(ledger, runs, run_id, labels, now)
        self.matcher = Matcher(target, self.links, match_by)
        self.handlers = Handlers(
            target, self.links, self.matcher, self.tally, ledger.intents(), batch_size
        )
        self._done = 0
        self._total = 0

    @property
    def result(self) -> ApplyResult:
        """What was applied so far (complete once ``apply`` returned)."""
        return self.tally.result

    async def apply(
        self,
        phases: list[tuple[Operation, ...]],
        concurrency: int,
        meanwhile: list[Callable[[], None]] | None = None,
    ) -> ApplyResult:
        """Send ``phases`` in order; each is popped off the list once sent (and freed).

        ``meanwhile``: blocking work that the sending does not depend on, popped off the list
        piece by piece, one while each of the first rounds of requests is on its way. What a
        short first phase leaves in the list is the caller's to finish. A StopCycle ends the
        sending and comes back in the result, with what was done until then.
        """
        started = time.process_time()
        result = self.tally.result
        try:
            await self._match_first(phases)
            await self._send_phases(phases, concurrency, meanwhile)
            if not result.interrupted:
                await self.settle_groups()
        except StopCycle as exc:
            result.stopped = exc
        finally:
            self.tally.flush()
            result.scim_requests = dict(self.target.requests)
            result.sending = self.target.sending()
            result.cpu_seconds = time.process_time() - started
        return result

    async def _match_first(self, phases: list[tuple[Operation, ...]]) -> None:
        """List what Learnster holds when many creates would otherwise each look it up."""
        self._total = sum(len(phase) for phase in phases)
        creates = sum(isinstance(op, CreateUser) for phase in phases for op in phase)
        if creates > MATCH_BY_LISTING_ABOVE:
            await self.matcher.list_users()
        if any(isinstance(op, CreateGroup) for phase in phases for op in phase):
            await self.matcher.list_groups(g.scim_id for g in self.links.groups.values())

    async def _send_phases(
        self,
        phases: list[tuple[Operation, ...]],
        concurrency: int,
        meanwhile: list[Callable[[], None]] | None,
    ) -> None:
        while phases:
            self.links.prefetch(phases[0])
            phase = phases.pop(0)
            sending = run_bounded(phase, self._apply_one, concurrency * 2)
            if meanwhile:
                round_size = min(len(phase), concurrency)
                await while_sending(sending, self.target, round_size, meanwhile)
                meanwhile = None
            else:
                await sending
            self.tally.flush()
            if self.cancel is not None and self.cancel.is_set():
                self.tally.result.interrupted = True
                return

    async def _apply_one(self, op: Operation) -> None:
        # A stop request is a checkpoint: what was sent is in the ledger, the rest waits.
        if self.cancel is not None and self.cancel.is_set():
            self.tally.result.interrupted = True
            return
        if self.tally.result.quarantined:
            self.tally.outcome(op, Outcome.NOT_SENT)
            return
        self.tally.attempt()
        try:
            await self.handlers.dispatch(op)
        finally:
            self._done += 1
            if self.progress is not None:
                self.progress(self._done, self._total, self.target.sending())

    async def settle_groups(self) -> None:
        """Remove second copies of tags whose create was retried (a lost answer, applied twice).

        Checked again next cycle too: a slow first POST can land after this check.
        """
        in_doubt = sorted(set(self.ledger.groups_in_doubt()) | self.target.groups_in_doubt)
        for graph_id in in_doubt:
            linked = self.links.groups.get(graph_id)
            if linked is None:
                continue
            try:
                for copy in await self.target.find_groups(graph_id):
                    if copy["id"] != linked.scim_id:
                        log.warning(
                            "removing a duplicate tag %s (%s)",
                            linked.display_name,
                            copy["id"],
                            extra=about(graph_id, "delete_group"),
                        )
                        await self.target.delete_group(copy["id"])
            except (ScimError, Unreachable) as exc:
                log.warning(
                    "could not check tag %s for duplicates: %s",
                    graph_id,
                    exc,
                    extra=about(graph_id),
                )
        self.ledger.set_groups_in_doubt(self.target.groups_in_doubt)


async def while_sending(
    sending: Awaitable[None],
    target: ScimTarget,
    round_size: int,
    pieces: list[Callable[[], None]],
) -> None:
    """Await ``sending``, running ``pieces`` one by one, each once a round is written.

    A round is ``round_size`` requests (or the end of the sending): their answers take a
    round trip, time in which the event loop has nothing else to do. Pieces left when the
    sending ends stay in the list.
    """
    task = asyncio.ensure_future(sending)
    try:
        while pieces and not task.done():
            waiting = asyncio.ensure_future(target.watch_sends(round_size).wait())
            try:
                await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
            pieces.pop(0)()
        await task
    finally:
        task.cancel()  # only if we are cancelled or a piece failed: it is done otherwise


async def run_bounded(
    items: Iterable[Operation], worker: Callable[[Operation], Awaitable[None]], width: int
) -> None:
    """Run ``worker`` over ``items`` with at most ``width`` in flight (no task per item)."""
    iterator = iter(items)

    async def drain() -> None:
        for item in iterator:
            await worker(item)

    try:
        # A TaskGroup cancels the other workers as soon as one raises (a stopped cycle).
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, width)):
                group.create_task(drain())
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
