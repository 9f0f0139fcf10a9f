"""Adaptive concurrency over real HTTP: the fake Learnster's capacity model, and the sink's
limiter finding a rate limit and a capacity below max_concurrency."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import httpx

from syncd.adapters.scim import ScimSink
from syncd.adapters.sqlite import Store
from syncd.adapters.transport import Answer, Gate
from syncd.core.limiter import ConcurrencyLimiter, Learned
from syncd.credentials import Secret
from syncd.errors import ExitCode
from syncd.fakes.learnster import FakeLearnster
from syncd.fakes.learnster.capacity import TokenBucket, Workers
from tests.conftest import Harness
from tests.helpers import CORE, run
from tests.test_sync_e2e import assert_learnster_matches_directory


def _get(url: str, token: str = "t") -> httpx.Response:
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"})


def test_the_fakes_rate_limit_answers_429_with_retry_after_beyond_its_bucket() -> None:
    with FakeLearnster(token="t", rate_limit=20, rate_burst=5) as fake:
        answers = [_get(f"{fake.base_url}/Users?count=1") for _ in range(12)]
    statuses = [a.status_code for a in answers]
    assert statuses[:5] == [200] * 5  # the bucket's five tokens
    refused = [a for a in answers if a.status_code == 429]
    assert refused, statuses
    assert all(int(a.headers["Retry-After"]) >= 1 for a in refused)
    assert refused[0].json()["status"] == "429"
    assert fake.bucket is not None
    assert fake.bucket.refused == len(refused)
    assert [r.status for r in fake.requests].count(429) == len(refused)


def test_the_fakes_capacity_makes_requests_beyond_it_wait() -> None:
    with FakeLearnster(token="t", capacity=2, latency_ms=100) as fake:
        threads = [
            threading.Thread(target=lambda: _get(f"{fake.base_url}/Users?count=1"))
            for _ in range(6)
        ]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - began
    assert elapsed >= 0.29  # six requests, two at a time, 100 ms each: three rounds
    assert [r.status for r in fake.requests] == [200] * 6


def test_the_capacity_model_serves_that_many_at_a_time() -> None:
    workers = Workers(2)
    starts: list[float] = []
    lock = threading.Lock()

    def serve() -> None:
        with workers.serving() as started:
            with lock:
                starts.append(started)
            time.sleep(0.05)

    threads = [threading.Thread(target=serve) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    starts.sort()
    # However the threads were scheduled, a third request starts only once one of the first
    # two is done, and a fifth once one of the second pair is.
    assert starts[2] - starts[0] >= 0.049
    assert starts[4] - starts[0] >= 0.099
    assert workers.busy == 0


def _create(fake: FakeLearnster, count: int, ceiling: int) -> ScimSink:
    async def go() -> ScimSink:
        async with ScimSink(
            fake.base_url, Secret("t"), max_concurrency=ceiling, backoff_base=0.05
        ) as sink:
            await asyncio.gather(
                *(
                    sink.create_user({"schemas": [CORE], "userName": f"u{i}@x.example"})
                    for i in range(count)
                )
            )
            return sink

    return run(go())


def test_the_sink_finds_a_rate_limit_and_stays_under_it() -> None:
    with FakeLearnster(token="t", rate_limit=100, latency_ms=20) as fake:
        started = time.monotonic()
        sink = _create(fake, 400, ceiling=64)
        elapsed = time.monotonic() - started
    assert len(fake.users) == 400  # each created once: a 429 is retried, never doubled
    state = sink.sending()
    assert state.throttled >= 1  # it found the limit
    assert fake.bucket is not None
    assert fake.bucket.refused == state.throttled
    assert state.throttled <= 0.1 * 400  # and did not hammer it
    assert state.limit < 64
    assert elapsed >= (400 - 10) / 100  # the bucket's rate bounds it; burst aside


def test_the_sink_finds_a_capacity_and_keeps_latency_near_the_base() -> None:
    with FakeLearnster(token="t", capacity=4, latency_ms=40) as fake:
        sink = _create(fake, 400, ceiling=64)
    assert len(fake.users) == 400
    state = sink.sending()
    assert state.throttled == 0
    assert 2 <= state.limit <= 16  # about the capacity (4), far below the ceiling of 64
    assert state.base_latency_ms >= 40
    assert fake.workers is not None
    assert fake.workers.peak_waiting < 32  # slow start overshoots a little, then no queue


def test_the_next_cycle_starts_from_what_the_last_learned(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(users=300)
    h.learnster.bucket = TokenBucket(rate=60, burst=6)
    h.learnster.latency_ms = 30  # 60/s at 30 ms: about 2 requests in flight
    report = h.sync()
    assert report.exit_code == ExitCode.OK, report.failures
    assert report.sending is not None
    assert report.sending.throttled >= 1
    store = Store(h.config.state_database)
    try:
        learned = store.runs.learnster_limit()
    finally:
        store.close()
    assert learned is not None
    assert learned.throttled
    assert learned.limit < 8  # below where a fresh cycle starts (max_concurrency 8)

    for user in [u for u in h.graph.users if u.get("accountEnabled")][:30]:
        h.graph.update_user(user["id"], jobTitle="Learned")
    h.learnster.server.reset_peak()
    again = h.sync()
    assert again.exit_code == ExitCode.OK, again.failures
    assert again.sending is not None
    assert not again.sending.slow_start
    # Started at the learned limit, probing slowly: never the 8 at once a fresh start sends.
    assert h.learnster.server.peak_in_flight <= learned.limit + 1
    assert_learnster_matches_directory(h)


def test_a_cycle_that_reached_the_ceiling_lets_the_next_start_there(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(users=60)
    h.edit_config("max_concurrency = 8", "max_concurrency = 16")
    h.learnster.latency_ms = 200  # far above what serving costs the fake: no queue shows
    assert h.sync().exit_code == ExitCode.OK
    store = Store(h.config.state_database)
    try:
        assert store.runs.learnster_limit() == Learned(16, throttled=False, capped=True)
    finally:
        store.close()

    for user in [u for u in h.graph.users if u.get("accountEnabled")][:16]:
        h.graph.update_user(user["id"], jobTitle="At the ceiling")
    h.learnster.server.reset_peak()
    again = h.sync()
    assert again.exit_code == ExitCode.OK, again.failures
    # All 16 PATCHes out at once: a fresh start would send 8, then climb.
    assert h.learnster.server.peak_in_flight == 16
    assert_learnster_matches_directory(h)


def test_the_gate_admits_in_order_up_to_the_limit_and_survives_a_cancelled_waiter() -> None:
    async def go() -> None:
        gate = Gate(ConcurrencyLimiter(2, initial=2))
        admitted: list[int] = []

        async def request(n: int, hold: asyncio.Event) -> None:
            sent = await gate.acquire()
            admitted.append(n)
            await hold.wait()
            gate.release(sent, Answer.WRITTEN)

        holds = [asyncio.Event() for _ in range(4)]
        tasks = [asyncio.create_task(request(n, holds[n])) for n in range(4)]
        await asyncio.sleep(0.01)
        assert admitted == [0, 1]  # two at a time
        assert gate.in_flight == 2
        tasks[2].cancel()  # a waiter gives up (SIGTERM): its place is not lost to the others
        await asyncio.sleep(0)
        holds[0].set()
        await asyncio.sleep(0.01)
        assert admitted == [0, 1, 3]
        holds[1].set()
        holds[3].set()
        await asyncio.gather(*(t for i, t in enumerate(tasks) if i != 2))
        assert gate.in_flight == 0

    run(go())


def test_a_throttled_answer_lowers_the_gate_for_the_requests_waiting() -> None:
    async def go() -> None:
        gate = Gate(ConcurrencyLimiter(8, initial=8))
        slots = [await gate.acquire() for _ in range(8)]
        gate.release(slots.pop(), Answer.THROTTLED)  # 8 × 0.9: 7 may be out
        assert gate.limiter.allowed == 7
        waiter = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0.01)
        assert not waiter.done()  # 7 are out
        gate.release(slots.pop(), Answer.FAILED)
        await asyncio.sleep(0.01)
        assert waiter.done()
        assert gate.in_flight == 7

    run(go())
