"""Fault injection of the fake Learnster: scripted faults and seeded random ones."""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass
from email.utils import formatdate

from syncd.fakes.learnster.base import _LearnsterBase


@dataclass(slots=True)
class _Fault:
    kind: str  # "status", "drop" or "slow"
    remaining: int = 1
    status: int = 503
    retry_after: str | None = None
    seconds: float = 0.0
    label: str = ""


class _Faults(_LearnsterBase):
    """Faults scripted for the next requests and random ones at ``fault_rate``."""

    fault_rate: float
    slow_seconds: float
    retry_after_seconds: float
    _rng: random.Random
    _scripted: deque[_Fault]

    def fail_next(
        self, n: int = 1, status: int = 503, retry_after: float | str | None = None
    ) -> None:
        """Answer the next ``n`` authorised requests with ``status`` (and ``Retry-After``)."""
        header = None if retry_after is None else self._retry_after_text(retry_after)
        with self._lock:
            self._scripted.append(_Fault("status", n, status, header, label=f"scripted {status}"))

    def drop_next(self, n: int = 1) -> None:
        """Close the connection without answering the next ``n`` authorised requests."""
        with self._lock:
            self._scripted.append(_Fault("drop", n, label="scripted drop"))

    def slow_next(self, n: int = 1, seconds: float | None = None) -> None:
        """Delay the next ``n`` authorised requests by ``seconds`` (default ``slow_seconds``)."""
        delay = self.slow_seconds if seconds is None else seconds
        with self._lock:
            self._scripted.append(_Fault("slow", n, seconds=delay, label="scripted slow"))

    def clear_faults(self) -> None:
        """Forget the scripted faults not yet met and stop the random ones (``fault_rate`` 0)."""
        with self._lock:
            self._scripted.clear()
            self.fault_rate = 0.0

    def _retry_after_text(self, value: float | str) -> str:
        if isinstance(value, str):
            return value
        return str(int(value)) if float(value).is_integer() else f"{value:g}"

    def _next_fault(self) -> _Fault | None:
        with self._lock:
            if self._scripted:
                head = self._scripted[0]
                head.remaining -= 1
                if head.remaining <= 0:
                    self._scripted.popleft()
                return head
            if self.fault_rate <= 0 or self._rng.random() >= self.fault_rate:
                return None
            kind = self._rng.choice(("429", "500", "503", "drop", "slow"))
            if kind == "drop":
                return _Fault("drop", label="random drop")
            if kind == "slow":
                return _Fault("slow", seconds=self.slow_seconds, label="random slow")
            retry_after: str | None = None
            base = self.retry_after_seconds
            if kind == "429":
                form = self._rng.choice(("seconds", "decimal", "date"))
                if form == "seconds":
                    retry_after = str(max(1, round(base)))
                elif form == "decimal":
                    retry_after = f"{base / 2:.1f}"
                else:
                    retry_after = formatdate(time.time() + base, usegmt=True)
            elif kind == "503" and self._rng.random() < 0.5:
                retry_after = str(max(1, round(base)))
            return _Fault(
                "status", status=int(kind), retry_after=retry_after, label=f"random {kind}"
            )
