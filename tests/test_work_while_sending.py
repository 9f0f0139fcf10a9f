"""Blocking work (the snapshot write, its checkpoint) runs while SCIM requests are out."""

from __future__ import annotations

import asyncio
import time

import pytest

from syncd.adapters.scim import ScimSink
from syncd.credentials import Secret
from syncd.fakes.learnster import FakeLearnster
from tests.helpers import CORE, run


def test_blocking_work_runs_while_rounds_of_requests_are_out() -> None:
    """A delta cycle writes its snapshot, then checkpoints it, in the time Learnster takes to
    answer the first two rounds of requests, not before or between them."""
    from syncd.cycle.apply import while_sending

    with FakeLearnster(token="t", latency_ms=400) as fake:
        seen: list[int] = []

        def piece() -> None:  # blocks the event loop, as the snapshot write does
            time.sleep(0.15)
            seen.append(len(fake.requests))

        async def go() -> float:
            async with ScimSink(fake.base_url, Secret("t"), max_concurrency=4) as sink:
                started = time.monotonic()
                sending = asyncio.gather(
                    *(
                        sink.create_user({"schemas": [CORE], "userName": f"w{i}@x.example"})
                        for i in range(8)
                    )
                )
                await while_sending(sending, sink, 4, [piece, piece])
                return time.monotonic() - started

        elapsed = run(go())
        assert seen == [4, 8]  # each ran once its round was out
        assert len(fake.users) == 8
        assert 0.8 <= elapsed < 0.8 + 0.12  # two rounds of 0.4 s; the pieces hidden in them


def test_blocking_work_left_when_the_sending_ends_stays_for_the_caller() -> None:
    from syncd.cycle.apply import while_sending

    calls: list[str] = []

    async def go() -> None:
        async with ScimSink("http://127.0.0.1:9/scim", Secret("t")) as sink:

            async def fails() -> None:
                raise RuntimeError("no request made")

            pieces = [lambda: calls.append("first"), lambda: calls.append("second")]
            with pytest.raises(RuntimeError):
                await while_sending(fails(), sink, 3, pieces)
            assert len(pieces) == 1  # the caller runs it: run_cycle does, in a finally

    run(go())
    assert calls == ["first"]
