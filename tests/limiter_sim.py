"""A simulated Learnster and client, in simulated time, to test the concurrency limiter with.

The server has the fake Learnster's capacity model: a token bucket (``rate_limit`` requests per
second, ``burst`` tokens; beyond it a 429 with Retry-After: 1, answered at once) and
``capacity`` workers that each serve one request in ``latency`` seconds (more requests queue,
so their latency grows). The client sends a backlog of requests, as many at a time as the
limiter allows, and retries a 429 after its Retry-After, as the sink does.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from syncd.core.limiter import ConcurrencyLimiter

THROTTLE_ANSWER = 0.001  # a 429 comes back at once
RETRY_AFTER = 1.0


@dataclass
class Outcome:
    seconds: float = 0.0
    succeeded: int = 0
    throttled: int = 0
    latencies: list[float] = field(default_factory=list)
    limits: list[int] = field(default_factory=list)  # the limit at each answer

    @property
    def rate(self) -> float:
        return self.succeeded / self.seconds

    @property
    def throttled_share(self) -> float:
        return self.throttled / (self.succeeded + self.throttled)

    @property
    def mean_latency(self) -> float:
        return sum(self.latencies) / len(self.latencies)


@dataclass
class Server:
    latency: float = 0.05
    rate_limit: float = 0.0  # 0: none
    burst: float = 0.0  # tokens the bucket holds (default: a tenth of a second's)
    capacity: int = 0  # 0: unlimited
    jitter: float = 0.0  # latency varies by up to this share, deterministically
    _tokens: float = 0.0
    _refilled: float = 0.0
    _workers_free_at: list[float] = field(default_factory=list)
    _count: int = 0

    def __post_init__(self) -> None:
        if self.rate_limit and not self.burst:
            self.burst = max(1.0, self.rate_limit / 10)
        self._tokens = self.burst
        self._workers_free_at = [0.0] * self.capacity

    def answer(self, sent: float) -> tuple[float, bool]:
        """When the answer to a request sent at ``sent`` comes back, and whether it is a 429."""
        if self.rate_limit:
            self._tokens = min(self.burst, self._tokens + (sent - self._refilled) * self.rate_limit)
            self._refilled = sent
            if self._tokens < 1:
                return sent + THROTTLE_ANSWER, True
            self._tokens -= 1
        self._count += 1
        latency = self.latency * (1 + self.jitter * ((self._count * 7919) % 101 / 100 - 0.5))
        if not self.capacity:
            return sent + latency, False
        start = max(sent, heapq.heappop(self._workers_free_at))
        heapq.heappush(self._workers_free_at, start + latency)
        return start + latency, False


def simulate(limiter: ConcurrencyLimiter, server: Server, requests: int) -> Outcome:
    """Send ``requests`` requests through ``limiter`` to ``server``; what it took."""
    outcome = Outcome()
    order = itertools.count()
    answers: list[tuple[float, int, float, bool]] = []  # (at, order, sent, throttled)
    retries: list[float] = []  # when throttled requests may go again
    backlog, now, in_flight = requests, 0.0, 0
    while backlog or in_flight or retries:
        while retries and retries[0] <= now:
            heapq.heappop(retries)
            backlog += 1
        while backlog and in_flight < limiter.allowed:
            at, throttled = server.answer(now)
            heapq.heappush(answers, (at, next(order), now, throttled))
            backlog -= 1
            in_flight += 1
        next_retry = retries[0] if retries else float("inf")
        if answers and answers[0][0] <= next_retry:
            now, _, sent, throttled = heapq.heappop(answers)
            in_flight -= 1
            if throttled:
                outcome.throttled += 1
                limiter.on_throttled(now)
                heapq.heappush(retries, now + RETRY_AFTER)
            else:
                outcome.succeeded += 1
                outcome.latencies.append(now - sent)
                limiter.on_success(now - sent, now, in_flight)
            outcome.limits.append(limiter.allowed)
        else:
            now = next_retry
    outcome.seconds = now
    return outcome
