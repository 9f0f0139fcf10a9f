"""The fake Learnster's capacity model: a rate limit and a number of workers.

- ``rate_limit``: a token bucket of ``rate_limit`` requests per second holding ``burst`` tokens
  (a tenth of a second's by default). A request that finds it empty is answered 429 at once,
  with ``Retry-After`` in whole seconds (at least 1), as HTTP gives it.
- ``capacity``: that many requests are served at a time, each taking the base latency; the
  others wait for a worker, so latency grows with the load beyond it, as a real server's does.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class TokenBucket:
    def __init__(self, rate: float, burst: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError("a rate limit must be positive")
        self.rate = rate
        self.burst = burst if burst > 0 else max(1.0, rate / 10)
        self._tokens = self.burst
        self._refilled = time.monotonic()
        self._lock = threading.Lock()
        self.refused = 0
        self.admitted = 0

    def take(self) -> int | None:
        """None when a token was taken; else the Retry-After, in seconds, to answer with."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                self.admitted += 1
                return None
            self.refused += 1
            return max(1, math.ceil((1 - self._tokens) / self.rate))


class Workers:
    """``capacity`` workers; each request holds one from when it gets it until it is answered."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a capacity must be at least 1")
        self.capacity = capacity
        self._free = threading.Semaphore(capacity)
        self._lock = threading.Lock()
        self.busy = 0
        self.peak_waiting = 0
        self._waiting = 0

    @contextmanager
    def serving(self) -> Iterator[float]:
        """Hold a worker; yields the monotonic time the worker was got (the work starts)."""
        with self._lock:
            self._waiting += 1
            self.peak_waiting = max(self.peak_waiting, self._waiting)
        self._free.acquire()
        with self._lock:
            self._waiting -= 1
            self.busy += 1
        try:
            yield time.monotonic()
        finally:
            with self._lock:
                self.busy -= 1
            self._free.release()
