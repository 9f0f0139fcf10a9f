"""The concurrency limiter's rules one answer at a time (docs/ARCHITECTURE.md, "Adaptive
concurrency"): its bounds, the delivery rate a throttle drops to, the hold of one round trip,
the latency threshold at its boundary, the jitter that lifts it, probing, and what it reports."""

from __future__ import annotations

import pytest

from syncd.core.limiter import ConcurrencyLimiter, Learned, LimiterState

FULL = 10_000  # in_flight far above any limit here: the limit is what holds requests back


def test_defaults_and_bounds() -> None:
    assert ConcurrencyLimiter(8).allowed == 4
    assert ConcurrencyLimiter(8, initial=0).allowed == 1  # the floor
    assert ConcurrencyLimiter(8, initial=20).allowed == 8  # the ceiling
    assert ConcurrencyLimiter(1).allowed == 1
    assert ConcurrencyLimiter(3, floor=3, initial=1).allowed == 3
    for ceiling, floor in ((0, 1), (4, 0), (2, 3)):
        with pytest.raises(ValueError, match="need 1 <= floor <= ceiling"):
            ConcurrencyLimiter(ceiling, floor=floor)


def test_a_fresh_limiter_reports_nothing_learned() -> None:
    state = ConcurrencyLimiter(8).state()
    assert state == LimiterState(
        limit=4,
        ceiling=8,
        latency_ms=0.0,
        base_latency_ms=0.0,
        mean_latency_ms=0.0,
        throttled=0,
        backoffs=0,
        slow_start=True,
        learned=None,
    )


def test_latency_is_smoothed_and_judged_against_a_base_after_three_answers() -> None:
    limiter = ConcurrencyLimiter(64, initial=8)
    limiter.on_success(0.1, 1.0, in_flight=0)
    limiter.on_success(0.2, 1.1, in_flight=0)
    state = limiter.state()
    assert state.latency_ms == pytest.approx(110.0)  # 0.1 + 0.1 × (0.2 − 0.1)
    assert state.base_latency_ms == 0.0  # two answers: no base yet
    assert state.mean_latency_ms == pytest.approx(150.0)
    limiter.on_success(0.1, 1.2, in_flight=0)
    state = limiter.state()
    assert state.latency_ms == pytest.approx(109.0)
    # the recent average: 0.1, 0.13, 0.121; the fastest answer × 1.25 (0.125) is above it
    assert state.base_latency_ms == pytest.approx(121.0)
    assert state.mean_latency_ms == pytest.approx(400.0 / 3)
    assert state.backoffs == 0


def test_the_base_is_bounded_by_the_fastest_answer() -> None:
    limiter = ConcurrencyLimiter(64, initial=8)
    for latency in (1.0, 1.0, 1.0):
        limiter.on_success(latency, 1.0, in_flight=0)
    assert limiter.state().base_latency_ms == pytest.approx(1000.0)
    limiter.on_success(0.2, 1.1, in_flight=0)  # one fast answer: the base is at most 1.25 × it
    assert limiter.state().base_latency_ms == pytest.approx(250.0)


def steady(limiter: ConcurrencyLimiter, answers: int, latency: float = 0.5) -> None:
    for i in range(answers):
        limiter.on_success(latency, float(i), in_flight=0)


def test_latency_exactly_at_the_threshold_is_no_queue() -> None:
    # Base 0.5 s, threshold 1.25 × 0.5 = 0.625 s. An answer of 1.75 s moves the smoothed
    # latency to 0.5 + 0.1 × 1.25 = 0.625 s exactly: not above, no decrease.
    limiter = ConcurrencyLimiter(64, initial=8)
    steady(limiter, 3)
    limiter.on_success(1.75, 3.0, in_flight=0)
    assert limiter.state().latency_ms == 625.0
    assert limiter.backoffs == 0
    assert limiter.allowed == 8
    # Above it, the limit is multiplied by 0.9 (once per round trip).
    limiter.on_success(1.75, 4.0, in_flight=0)
    assert limiter.backoffs == 1
    assert limiter.allowed == 7  # 8 × 0.9 = 7.2
    assert not limiter.state().slow_start


def test_a_rise_well_under_a_second_is_a_queue_before_any_jitter_is_known() -> None:
    limiter = ConcurrencyLimiter(64, initial=8)
    steady(limiter, 3, latency=0.05)
    for i in range(3):
        limiter.on_success(0.2, 3.0 + i, in_flight=0)
    assert limiter.backoffs >= 1


def test_jitter_seen_while_no_queue_showed_lifts_the_threshold() -> None:
    # 19 answers at 0.5 s, then at the 20th (the jitter's warm-up) one of 1.75 s moves the
    # smoothed latency to 0.625 s, exactly the threshold (no queue): its deviation, 0.125 s,
    # is taken as the jitter. The 21st answer moves it to 0.7375 s: above 0.625 s, but not
    # above 0.625 + 0.125 s.
    limiter = ConcurrencyLimiter(64, initial=8)
    steady(limiter, 19)
    limiter.on_success(1.75, 19.0, in_flight=0)
    limiter.on_success(1.75, 20.0, in_flight=0)
    assert limiter.state().latency_ms == pytest.approx(737.5)
    assert limiter.backoffs == 0
    # The 22nd, at 0.625 + 0.1 × (1.75 − 0.7375) ≈ 0.8388 s, is above it.
    limiter.on_success(1.75, 21.0, in_flight=0)
    assert limiter.backoffs == 1


def test_jitter_is_the_smoothed_deviation() -> None:
    # 20 answers alternating 0.5 and 0.6 s, then a slow one: whether that one is a queue
    # depends on the deviation accumulated answer by answer.
    def run(last: float) -> int:
        limiter = ConcurrencyLimiter(64, initial=8)
        for i in range(20):
            limiter.on_success(0.5 if i % 2 == 0 else 0.6, float(i), in_flight=0)
        limiter.on_success(last, 20.0, in_flight=0)
        limiter.on_success(last, 21.0, in_flight=0)
        return limiter.backoffs

    # the jitter: 0.046 s after 20 answers, so the threshold is 0.521 × 1.25 + 0.046 ≈ 0.697 s
    assert run(1.2) == 0  # smoothed ≈ 0.670 s
    assert run(1.5) == 1  # smoothed ≈ 0.727 s


def test_a_success_grows_the_limit_only_when_the_limit_held_requests_back() -> None:
    limiter = ConcurrencyLimiter(64, initial=4)
    limiter.on_success(None, 0.0, in_flight=2)  # 3 out of 4: nothing held back
    assert limiter.allowed == 4
    limiter.on_success(None, 0.0, in_flight=3)  # 4 out of 4: slow start, one slot more
    assert limiter.allowed == 5
    limiter.on_success(None, 0.0, in_flight=4)
    assert limiter.allowed == 6


def test_the_ceiling_is_never_passed() -> None:
    limiter = ConcurrencyLimiter(5, initial=4)
    for _ in range(3):
        limiter.on_success(None, 0.0, in_flight=FULL)
    assert limiter.allowed == 5


def test_after_a_latency_backoff_the_limit_probes_by_a_quarter_slot_per_round_trip() -> None:
    limiter = ConcurrencyLimiter(64, initial=10)
    steady(limiter, 3)
    limiter.on_success(1.75, 3.0, in_flight=0)
    limiter.on_success(1.75, 4.0, in_flight=0)  # a queue: 10 × 0.9 = 9
    assert limiter.allowed == 9
    # + 0.25 / limit per answer: a slot more after 38 answers (4 round trips and a bit)
    for i in range(37):
        limiter.on_success(None, 5.0 + i, in_flight=FULL)
    assert limiter.allowed == 9
    limiter.on_success(None, 50.0, in_flight=FULL)
    assert limiter.allowed == 10
    assert limiter.learned() == Learned(10, throttled=False)


def test_after_a_throttle_the_limit_probes_by_a_fiftieth_of_a_slot_per_round_trip() -> None:
    limiter = ConcurrencyLimiter(64, initial=10)
    limiter.on_throttled(0.0)  # nothing delivered yet: 10 × 0.9 = 9
    assert limiter.allowed == 9
    # + 0.02 / limit per answer: a slot more after 475 answers (about 50 round trips)
    for i in range(474):
        limiter.on_success(None, 1.0 + i, in_flight=FULL)
    assert limiter.allowed == 9
    limiter.on_success(None, 500.0, in_flight=FULL)
    assert limiter.allowed == 10
    assert limiter.learned() == Learned(10, throttled=True)


def test_a_throttle_drops_to_what_learnster_delivered() -> None:
    # Two answers of 0.1 s in the last second: 2/s × 0.1 s = 0.2 requests in flight; under 1,
    # so the floor.
    limiter = ConcurrencyLimiter(100, initial=50)
    limiter.on_success(0.1, 0.0, in_flight=0)
    limiter.on_success(0.1, 1.0, in_flight=0)  # an answer a whole second old still counts
    limiter.on_throttled(1.0)
    assert limiter.allowed == 1
    state = limiter.state()
    assert state.throttled == 1
    assert state.backoffs == 1


@pytest.mark.parametrize(
    ("times", "throttled_at", "allowed"),
    [
        # 21 answers in 1 s of 0.5 s each: 21/s × 0.5 s = 10.5; × 0.9 = 9.45
        ([i * 0.05 for i in range(21)], 1.0, 9),
        # answers over 0.5 s (the shortest span a rate is told from): 11 / 0.5 × 0.5 × 0.9 = 9.9
        ([i * 0.05 for i in range(11)], 0.5, 9),
        # over 0.4 s: too short to tell a rate: 50 × 0.9
        ([i * 0.05 for i in range(9)], 0.4, 45),
        # older answers are forgotten: those of the last second only (11 over 1 s: 4.95)
        ([0.0, 0.1, *(1.5 + i * 0.1 for i in range(11))], 2.5, 4),
    ],
)
def test_the_delivery_rate_a_throttle_drops_to(
    times: list[float], throttled_at: float, allowed: int
) -> None:
    limiter = ConcurrencyLimiter(100, initial=50)
    for now in times:
        limiter.on_success(0.5, now, in_flight=0)
    limiter.on_throttled(throttled_at)
    assert limiter.allowed == allowed


def test_answers_without_a_latency_give_no_rate() -> None:
    limiter = ConcurrencyLimiter(100, initial=50)
    for i in range(20):
        limiter.on_success(None, i * 0.05, in_flight=0)
    limiter.on_throttled(1.0)
    assert limiter.allowed == 45


def test_within_the_round_trip_of_a_decrease_each_throttle_takes_one_slot() -> None:
    limiter = ConcurrencyLimiter(100, initial=50)
    limiter.on_success(0.25, 0.25, in_flight=0)  # smoothed latency 0.25 s
    limiter.on_throttled(0.375)  # 50 × 0.9 = 45; held until 0.625
    assert limiter.allowed == 45
    limiter.on_throttled(0.5)
    assert limiter.allowed == 44
    limiter.on_throttled(0.625)  # the round trip is over: a decrease again
    assert limiter.allowed == 39  # 44 × 0.9 = 39.6
    assert limiter.state().backoffs == 2
    assert limiter.state().throttled == 3


def test_without_a_latency_a_decrease_holds_nothing() -> None:
    limiter = ConcurrencyLimiter(100, initial=50)
    limiter.on_throttled(0.0)
    limiter.on_throttled(0.5)  # no round trip known: a decrease again
    assert limiter.allowed == 40  # 50 × 0.9 × 0.9 = 40.5
    assert limiter.backoffs == 2


def test_a_latency_decrease_within_the_hold_changes_nothing() -> None:
    limiter = ConcurrencyLimiter(64, initial=20)
    for now in (2.75, 2.875, 3.0):
        limiter.on_success(0.5, now, in_flight=0)
    limiter.on_throttled(3.0)  # answers over 0.25 s tell no rate: 18, held for 0.5 s
    assert limiter.allowed == 18
    limiter.on_success(5.0, 3.5, in_flight=0)  # a queue at the end of the hold: 16.2
    assert limiter.allowed == 16
    limiter.on_success(5.0, 3.9, in_flight=0)  # within the hold it made: nothing
    assert limiter.allowed == 16
    assert limiter.backoffs == 2


def test_what_a_cycle_learned_is_where_the_next_starts() -> None:
    assert ConcurrencyLimiter(8).learned() is None
    resumed = ConcurrencyLimiter(8, learned=Learned(6, throttled=False))
    assert resumed.allowed == 6
    state = resumed.state()
    assert state.slow_start is False
    assert state.learned == Learned(6, throttled=False)
    # without slow start, probing as after latency alone: + 0.25 / limit per answer
    for i in range(25):
        resumed.on_success(None, float(i), in_flight=FULL)
    assert resumed.allowed == 6
    resumed.on_success(None, 30.0, in_flight=FULL)
    assert resumed.allowed == 7
    assert ConcurrencyLimiter(4, learned=Learned(9, throttled=True)).allowed == 4
    assert ConcurrencyLimiter(4, floor=2, learned=Learned(1, throttled=True)).allowed == 2


@pytest.mark.parametrize(
    ("data", "learned"),
    [
        ({"limit": 1, "throttled": False}, Learned(1, False)),
        ({"limit": 12, "throttled": True}, Learned(12, True)),
        ({"limit": 0, "throttled": True}, None),
        ({"limit": 1.0, "throttled": True}, None),
        ({"limit": True, "throttled": True}, None),
        ({"limit": 3, "throttled": 1}, None),
        ({"limit": 3}, None),
        ([3, True], None),
    ],
)
def test_learned_from_json(data: object, learned: Learned | None) -> None:
    assert Learned.from_json(data) == learned


def test_learned_and_state_as_json() -> None:
    assert Learned(5, True).as_json() == {"limit": 5, "throttled": True, "capped": False}
    assert Learned(8, False, capped=True).as_json() == {
        "limit": 8,
        "throttled": False,
        "capped": True,
    }
    assert Learned.from_json({"limit": 8, "throttled": False, "capped": True}) == Learned(
        8, False, capped=True
    )
    assert Learned.from_json({"limit": 5, "throttled": True}) == Learned(5, True)  # no "capped"
    state = LimiterState(
        limit=3,
        ceiling=8,
        latency_ms=12.3456,
        base_latency_ms=7.891,
        mean_latency_ms=10.005001,
        throttled=2,
        backoffs=1,
        slow_start=False,
    )
    assert state.as_json() == {
        "limit": 3,
        "ceiling": 8,
        "latency_ms": 12.35,
        "base_latency_ms": 7.89,
        "mean_latency_ms": 10.01,
        "throttled": 2,
        "backoffs": 1,
        "slow_start": False,
    }
    assert state.describe() == "concurrency 3/8, 12 ms (base 8), 2 throttled"
