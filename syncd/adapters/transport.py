"""HTTP plumbing of the SCIM sink: Retry-After, the environment's proxy, pacing, send watches."""

from __future__ import annotations

import asyncio
import email.utils
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds (decimals accepted) or HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, 300.0))


def environment_proxy(url: str) -> str | None:
    """The proxy the environment sets for ``url`` (HTTPS_PROXY, ALL_PROXY, NO_PROXY), if any."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.netloc):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


class Pacer:
    """Client-side rate limit: requests start at most ``rate`` per second, evenly spaced."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)


class SendWatch:
    """Counts written requests through httpcore's ``trace`` extension, then stops watching."""

    def __init__(self, count: int, on_done: Callable[[SendWatch], None]) -> None:
        self.remaining = count
        self.written = asyncio.Event()
        self._on_done = on_done

    async def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event.endswith(".send_request_body.complete"):  # http11 or http2
            self.remaining -= 1
            if self.remaining <= 0:
                self.done()

    def done(self) -> None:
        self.written.set()
        self._on_done(self)
