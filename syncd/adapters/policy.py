"""What every repository adapter computes the same way: escrow backoff, the guard's state."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

ESCROW_BASE_SECONDS = 300.0  # first retry after 5 minutes, doubling per failure ...
ESCROW_MAX_SECONDS = 86400.0  # ... up to once a day
LOG_KEEP_DAYS = 30.0  # the provisioning log of older runs is pruned ([state] log_days)


def escrow_delay(attempts: int, retry_after: float | None) -> float:
    """Seconds until the next retry of an object that failed ``attempts`` times in a row.

    The wait doubles with each failure (5 minutes to a day); a server's Retry-After that asks
    for longer wins.
    """
    backoff = min(ESCROW_BASE_SECONDS * 2.0 ** (attempts - 1), ESCROW_MAX_SECONDS)
    return max(backoff, retry_after or 0.0)


def guard_state(
    previous: Mapping[str, Any] | None, held: int, message: str, now: datetime
) -> dict[str, Any] | None:
    """The guard state after a cycle that held ``held`` removals (None: clear); the time it
    first tripped is kept while it stays tripped."""
    if not held:
        return None
    since = previous["since"] if previous else now.isoformat()
    return {"held": held, "message": message, "since": since}
