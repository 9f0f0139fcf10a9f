"""The concurrency limiter against a simulated Learnster (tests/limiter_sim.py), in simulated time."""

from __future__ import annotations

import pytest

from syncd.core.limiter import ConcurrencyLimiter, Learned
from tests.limiter_sim import Server, simulate

REQUESTS = 21_000  # about what the initial cycle of a 20,000-user tenant sends


@pytest.mark.parametrize("burst", [0.0, 200.0], ids=["burst of 0.1 s", "burst of 1 s"])
def test_a_rate_limit_is_found_and_kept_just_under(burst: float) -> None:
    limiter = ConcurrencyLimiter(64)
    outcome = simulate(limiter, Server(latency=0.05, rate_limit=200, burst=burst), REQUESTS)
    assert outcome.rate >= 0.9 * 200
    assert outcome.throttled_share <= 0.02
    assert 8 <= limiter.allowed <= 12  # 200/s at 50 ms needs 10 in flight


def test_a_capacity_is_found_without_a_queue_growing() -> None:
    limiter = ConcurrencyLimiter(64)
    outcome = simulate(limiter, Server(latency=0.05, capacity=8, jitter=0.3), REQUESTS)
    ideal = REQUESTS * 0.05 / 8
    assert outcome.seconds <= 1.25 * ideal
    assert outcome.mean_latency <= 1.5 * 0.05
    assert outcome.throttled == 0


@pytest.mark.parametrize("ceiling", [16, 64])
def test_an_unlimited_target_gets_the_ceiling_despite_jitter(ceiling: int) -> None:
    limiter = ConcurrencyLimiter(ceiling)
    outcome = simulate(limiter, Server(latency=0.05, jitter=0.4), REQUESTS)
    assert outcome.seconds <= 1.05 * REQUESTS * 0.05 / ceiling
    assert limiter.allowed == ceiling
    assert limiter.backoffs == 0
    assert max(outcome.limits) == ceiling  # the ceiling is never passed


def test_slow_start_doubles_the_limit_each_round_trip() -> None:
    limiter = ConcurrencyLimiter(64, initial=4)
    for _ in range(4):  # one round trip: the 4 requests out come back, each replaced at once
        limiter.on_success(0.05, 0.05, in_flight=limiter.allowed - 1)
    assert limiter.allowed == 8
    assert limiter.state().slow_start


def test_a_limit_that_held_nothing_back_does_not_grow() -> None:
    """Application-limited: 2 requests out under a limit of 4 say nothing about 5."""
    limiter = ConcurrencyLimiter(64, initial=4)
    for i in range(100):
        limiter.on_success(0.05, 0.05 * i, in_flight=0)
    assert limiter.allowed == 4


def test_a_throttle_decreases_at_once_and_again_for_each_throttle_in_that_round_trip() -> None:
    limiter = ConcurrencyLimiter(64, initial=20)
    for _ in range(20):
        limiter.on_success(0.05, 0.05, in_flight=limiter.allowed - 1)
    limiter.on_throttled(0.06)
    after_first = limiter.allowed
    assert after_first == int(40 * 0.9)  # slow start had reached 40: backoff 0.9
    limiter.on_throttled(0.061)  # the same round trip: the decrease was not enough
    assert limiter.allowed == after_first - 1
    state = limiter.state()
    assert (state.throttled, state.backoffs, state.slow_start) == (2, 1, False)


def test_the_limit_stays_between_floor_and_ceiling() -> None:
    limiter = ConcurrencyLimiter(3, initial=10, floor=2)
    assert limiter.allowed == 3
    for i in range(50):
        limiter.on_throttled(float(i))
    assert limiter.allowed == 2
    with pytest.raises(ValueError, match="floor"):
        ConcurrencyLimiter(2, floor=3)


def test_queueing_latency_backs_off_without_any_429() -> None:
    limiter = ConcurrencyLimiter(64, initial=30)
    now = 0.0
    for _ in range(20):
        now += 0.01
        limiter.on_success(0.05, now, in_flight=29)
    before = limiter.allowed
    for _ in range(20):  # answers take twice as long: a queue in Learnster
        now += 0.01
        limiter.on_success(0.10, now, in_flight=limiter.allowed)
    assert limiter.allowed < before
    assert limiter.throttled == 0


def test_the_state_describes_itself_for_the_progress_line() -> None:
    limiter = ConcurrencyLimiter(64)
    for i in range(12):
        limiter.on_success(0.052, 0.01 * i, in_flight=limiter.allowed)
    limiter.on_throttled(0.2)
    text = limiter.state().describe()
    assert text.startswith(f"concurrency {limiter.allowed}/64, 52 ms (base 52)")
    assert text.endswith("1 throttled")
    assert limiter.state().as_json()["ceiling"] == 64


def test_a_cycle_starts_where_the_last_one_learned_without_slow_start() -> None:
    first = ConcurrencyLimiter(64)
    simulate(first, Server(latency=0.05, rate_limit=200), 3_000)
    learned = first.learned()
    assert learned is not None
    assert learned.throttled
    assert 8 <= learned.limit <= 12

    second = ConcurrencyLimiter(64, learned=learned)
    assert second.allowed == learned.limit
    assert not second.state().slow_start
    outcome = simulate(second, Server(latency=0.05, rate_limit=200), 300)  # a small cycle
    fresh = simulate(ConcurrencyLimiter(64), Server(latency=0.05, rate_limit=200), 300)
    assert outcome.throttled < fresh.throttled
    assert outcome.throttled_share <= 0.02


def test_nothing_is_learned_in_slow_start_and_a_learned_limit_is_kept_in_bounds() -> None:
    limiter = ConcurrencyLimiter(16, initial=4)
    simulate(limiter, Server(latency=0.05), 6)  # still climbing: nothing to remember
    assert limiter.allowed < 16
    assert limiter.learned() is None
    assert ConcurrencyLimiter(8, learned=Learned(limit=40, throttled=False)).allowed == 8
    assert ConcurrencyLimiter(8, learned=Learned(limit=3, throttled=False)).learned() == Learned(
        3, False
    )


def test_a_ceiling_reached_without_congestion_is_where_the_next_cycle_starts() -> None:
    limiter = ConcurrencyLimiter(16, initial=8)
    simulate(limiter, Server(latency=0.05), 500)
    capped = limiter.learned()
    assert capped == Learned(16, throttled=False, capped=True)

    again = ConcurrencyLimiter(16, initial=8, learned=capped)
    assert again.allowed == 16  # no climb from 8 again
    outcome = simulate(again, Server(latency=0.05), 32)  # a small cycle: two round trips
    assert outcome.seconds == pytest.approx(0.10)  # from 8 it would take three
    assert again.learned() == capped

    # The ceiling raised since: slow start goes on from the old one, nothing pushed back.
    raised = ConcurrencyLimiter(64, initial=8, learned=capped)
    assert raised.allowed == 16
    assert raised.state().slow_start
    simulate(raised, Server(latency=0.05), 2_000)
    assert raised.allowed == 64
    assert raised.learned() == Learned(64, throttled=False, capped=True)

    # Congestion under a capped start: what is learned is that limit, no longer capped.
    limited = ConcurrencyLimiter(64, initial=8, learned=Learned(64, False, capped=True))
    simulate(limited, Server(latency=0.05, rate_limit=200), 3_000)
    learned = limited.learned()
    assert learned is not None
    assert learned.throttled
    assert not learned.capped
    assert learned.limit < 64


@pytest.mark.parametrize(
    "stored",
    [
        None,
        [],
        {"limit": "10", "throttled": True},
        {"limit": 0, "throttled": False},
        {"limit": 5},
        {"limit": 5, "throttled": False, "capped": "yes"},
        {"limit": 5, "throttled": True, "capped": True},  # a cap is reached without throttling
    ],
)
def test_a_stored_value_that_is_not_a_learned_limit_is_ignored(stored: object) -> None:
    assert Learned.from_json(stored) is None
    assert Learned.from_json({"limit": 5, "throttled": False}) == Learned(5, False)
