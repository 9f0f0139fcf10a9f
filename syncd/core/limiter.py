"""How many requests may be in flight to Learnster: found by watching its answers.

Nobody knows a Learnster tenant's capacity, so the sink finds it (docs/ARCHITECTURE.md,
"Adaptive concurrency"). The limit is congestion control in the spirit of TCP's:

- **Slow start.** From ``initial``, one more slot per success (the limit doubles per round
  trip) until the first sign of congestion or the ceiling (``max_concurrency``). A cycle
  starts where the last one ended instead (``Learned``): at its limit after congestion, or
  at the ceiling it reached without any, going on with slow start if the ceiling was raised.
- **Throttling** (429, 503, a timeout): the limit drops at once to just under what Learnster
  has been delivering (successes per second over the last second × their latency: the
  concurrency that rate needs), and never above ``backoff`` × the limit. One such decrease
  per round trip; each further throttle within it takes one slot more.
- **Latency.** When the smoothed latency exceeds ``tolerance`` × the base (the lowest a
  faster average has been) plus the jitter seen while no queue showed, requests are queueing
  inside Learnster: the limit is multiplied by ``backoff``.
- **Probing.** Otherwise, when the limit is what holds requests back, it grows additively:
  ``probe`` slots per round trip once Learnster has throttled (slowly, so that touching its
  limit again costs few 429s), ``latency_probe`` after latency alone.

Pure: time comes in as arguments (seconds on any monotonic clock); no I/O, no asyncio.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

# Smoothing of the latency: the weight of each new sample. The smoothed latency is judged
# against the lowest the recent latency (a faster average) has been: the first answers,
# before any queue built, count, and one fast answer does not make all others look slow.
_LATENCY_WEIGHT = 0.1
_RECENT_WEIGHT = 0.3
# Answers before the deviation is taken as the jitter of Learnster's answers.
_JITTER_WARMUP = 20
# Answers before the recent latency is taken as a baseline.
_WARMUP = 3
# The delivery rate is measured over this many seconds of successes.
_RATE_WINDOW = 1.0


@dataclass(frozen=True)
class Learned:
    """What one cycle learned of Learnster, for the next to start from (kept in the state):
    the limit it ended with, after Learnster throttled or queued; or, ``capped``, the ceiling
    it reached with no sign of either (a cycle that reached neither learned nothing)."""

    limit: int
    throttled: bool
    capped: bool = False

    def as_json(self) -> dict[str, object]:
        return {"limit": self.limit, "throttled": self.throttled, "capped": self.capped}

    @classmethod
    def from_json(cls, data: object) -> Learned | None:
        """None for anything that is not what ``as_json`` wrote (an older or damaged value)."""
        if not isinstance(data, dict):
            return None
        limit, throttled = data.get("limit"), data.get("throttled")
        capped = data.get("capped", False)  # absent in what the first version wrote
        if type(limit) is not int or limit < 1 or not isinstance(throttled, bool):
            return None
        if not isinstance(capped, bool) or (capped and throttled):
            return None
        return cls(limit, throttled, capped)


@dataclass(frozen=True)
class LimiterState:
    """What the limiter knows, for reports, metrics and the progress line."""

    limit: int
    ceiling: int
    latency_ms: float  # smoothed
    base_latency_ms: float  # what latency is judged against: the lowest it has been
    mean_latency_ms: float  # of every write answered
    throttled: int  # answers that were 429, 503 or a timeout
    backoffs: int  # decreases of the limit
    slow_start: bool
    learned: Learned | None = None  # what the next cycle starts from

    def describe(self) -> str:
        text = f"concurrency {self.limit}/{self.ceiling}"
        if self.latency_ms:
            text += f", {self.latency_ms:.0f} ms (base {self.base_latency_ms:.0f})"
        if self.throttled:
            text += f", {self.throttled} throttled"
        return text

    def as_json(self) -> dict[str, object]:
        return {
            "limit": self.limit,
            "ceiling": self.ceiling,
            "latency_ms": round(self.latency_ms, 2),
            "base_latency_ms": round(self.base_latency_ms, 2),
            "mean_latency_ms": round(self.mean_latency_ms, 2),
            "throttled": self.throttled,
            "backoffs": self.backoffs,
            "slow_start": self.slow_start,
        }


class ConcurrencyLimiter:
    """The number of requests allowed in flight (``allowed``), adapted to each answer."""

    def __init__(
        self,
        ceiling: int,
        *,
        initial: int = 4,
        floor: int = 1,
        tolerance: float = 1.25,
        backoff: float = 0.9,
        probe: float = 0.02,
        latency_probe: float = 0.25,
        learned: Learned | None = None,
    ) -> None:
        """``learned``: what the last cycle found. It starts at that limit without slow start,
        so that it does not run into the same 429s or queue every night; from a ``capped``
        one (the last ceiling, reached with no congestion) slow start goes on above it."""
        if ceiling < 1 or floor < 1 or floor > ceiling:
            raise ValueError(f"ceiling {ceiling} and floor {floor}: need 1 <= floor <= ceiling")
        self.ceiling = ceiling
        self.floor = floor
        self._limit = float(max(floor, min(initial, ceiling)))
        self._tolerance = tolerance
        self._backoff = backoff
        self._probe = probe
        self._latency_probe = latency_probe
        self._slow_start = True
        self._was_throttled = False
        self._resumed = learned is not None
        self._capped_start = learned is not None and learned.capped
        if learned is not None:
            self._limit = float(max(floor, min(learned.limit, ceiling)))
            self._slow_start = learned.capped
            self._was_throttled = learned.throttled
        self._base: float | None = None  # what latency is judged against (_queueing)
        self._samples = 0
        self._smoothed: float | None = None
        self._recent: float | None = None
        self._fastest = float("inf")
        self._latency_sum = 0.0
        self._deviation = 0.0  # smoothed distance of each latency from the smoothed one
        self._jitter = float("inf")  # the least deviation seen
        self._hold_until = float("-inf")  # no second decrease before this
        self._delivered: deque[float] = deque()  # times of recent successes
        self.throttled = 0
        self.backoffs = 0

    @property
    def allowed(self) -> int:
        return int(self._limit)

    def on_success(self, latency: float | None, now: float, in_flight: int) -> None:
        """An answer that was not throttling, ``latency`` seconds after its request went out
        (None: a request whose time says nothing of the load, such as a large page);
        ``in_flight``: requests still out besides this one."""
        self._delivered.append(now)
        while self._delivered[0] < now - _RATE_WINDOW:
            self._delivered.popleft()
        if latency is not None and self._queueing(latency):
            self._decrease(now, self._limit * self._backoff)
            return
        if in_flight + 1 < self.allowed:
            return  # the limit held nothing back: no evidence more would be welcome
        if self._slow_start:
            self._limit += 1.0
        else:
            gain = self._probe if self._was_throttled else self._latency_probe
            self._limit += gain / self._limit
        if self._limit >= self.ceiling:
            self._limit = float(self.ceiling)

    def _queueing(self, latency: float) -> bool:
        """Take in one latency; whether the smoothed latency now says requests queue."""
        self._fastest = min(self._fastest, latency)
        self._latency_sum += latency
        if self._smoothed is None or self._recent is None:
            self._smoothed = self._recent = latency
        else:
            self._deviation += _LATENCY_WEIGHT * (abs(latency - self._smoothed) - self._deviation)
            self._smoothed += _LATENCY_WEIGHT * (latency - self._smoothed)
            self._recent += _RECENT_WEIGHT * (latency - self._recent)
        self._samples += 1
        if self._samples < _WARMUP:
            return False  # too few answers for an average to mean anything
        if self._base is None or self._recent < self._base:
            self._base = self._recent
        # The fastest answer bounds it too: when the first answers already queued (more were
        # sent at once than Learnster serves at a time), no average of them is the base.
        self._base = min(self._base, self._fastest * self._tolerance)
        clean = self._tolerance * self._base
        if self._samples >= _JITTER_WARMUP and self._smoothed <= clean:
            self._jitter = min(self._jitter, self._deviation)
        # Jitter lifts the threshold: an average of jittery answers sits above their lowest.
        # Only jitter seen while no queue showed: a queue's answers vary more, too.
        jitter = 0.0 if self._jitter == float("inf") else self._jitter
        return self._smoothed > clean + jitter

    def on_throttled(self, now: float) -> None:
        """A 429, a 503 or a timeout: Learnster has more than it can take."""
        self.throttled += 1
        self._was_throttled = True
        if now < self._hold_until:
            # Throttled again within the round trip the last decrease left: it did not go far
            # enough. A 429 comes back at once, so without this the freed slot would be refilled
            # at once, and throttled again, for the whole round trip.
            self._limit = max(float(self.floor), self._limit - 1.0)
            return
        target = self._limit * self._backoff
        if self._smoothed is not None and self._delivered:
            span = now - self._delivered[0]
            if span >= _RATE_WINDOW / 2:  # else too few answers to tell a rate
                # Little's law: requests in flight = rate × time each spends in flight.
                delivered = len(self._delivered) / span * self._smoothed
                target = min(target, self._backoff * delivered)
        self._decrease(now, target)

    def _decrease(self, now: float, target: float) -> None:
        self._slow_start = False
        if now < self._hold_until:
            return
        self._limit = max(float(self.floor), min(self._limit, target))
        self.backoffs += 1
        self._hold_until = now + (self._smoothed or 0.0)

    def learned(self) -> Learned | None:
        """What the next cycle may start from (where this one began from what the last
        learned, what probing made of that); None while no cycle met congestion or reached
        the ceiling (a small one still in slow start)."""
        if self.backoffs or (self._resumed and not self._capped_start):
            return Learned(self.allowed, self._was_throttled)
        if self._resumed or self.allowed >= self.ceiling:
            # No congestion: the next cycle need not climb from the initial limit again.
            return Learned(self.allowed, False, capped=True)
        return None

    def state(self) -> LimiterState:
        return LimiterState(
            limit=self.allowed,
            ceiling=self.ceiling,
            latency_ms=(self._smoothed or 0.0) * 1000,
            base_latency_ms=(self._base or 0.0) * 1000,
            mean_latency_ms=self._latency_sum / self._samples * 1000 if self._samples else 0.0,
            throttled=self.throttled,
            backoffs=self.backoffs,
            slow_start=self._slow_start,
            learned=self.learned(),
        )
