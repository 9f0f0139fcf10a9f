"""HTTP plumbing: Retry-After, the environment's proxy, pacing, the adaptive gate, send watches,
bounded answers."""

from __future__ import annotations

import asyncio
import email.utils
import enum
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx

from syncd.adapters.origin import redirect_target
from syncd.config import MAX_RESPONSE_BYTES
from syncd.core.limiter import ConcurrencyLimiter
from syncd.credentials import tls_verify


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


def speaks_tls(url: str, proxy: str | None) -> bool:
    """Whether connections for ``url`` (through ``proxy``) can need TLS at all."""
    schemes = {urllib.parse.urlsplit(url).scheme, urllib.parse.urlsplit(proxy or "").scheme}
    return "https" in schemes


def connection_options(url: str, ca_file: str) -> dict[str, Any]:
    """httpx transport arguments for ``url``: the environment's proxy and what certificates
    are verified with (nothing loaded where no connection can speak TLS)."""
    proxy = environment_proxy(url)
    return {"verify": tls_verify(ca_file, used=speaks_tls(url, proxy)), "proxy": proxy}


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


class Gate:
    """Admits requests while fewer are out than the limiter allows, and tells it each answer.

    A semaphore whose size the limiter changes as answers come (syncd.core.limiter). Waiters
    are admitted first come, first served.
    """

    def __init__(self, limiter: ConcurrencyLimiter) -> None:
        self.limiter = limiter
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> float:
        """Wait for a slot; the monotonic time it was given (the request's send time)."""
        if self._waiters or self.in_flight >= self.limiter.allowed:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter  # the slot is counted for us by _admit
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self.in_flight -= 1  # admitted, then cancelled: give the slot back
                    self._admit()
                else:
                    self._waiters.remove(waiter)
                raise
        else:
            self.in_flight += 1
        return time.monotonic()

    def release(self, sent: float, answer: Answer) -> None:
        """The slot taken at ``sent`` is free; how its request was answered."""
        self.in_flight -= 1
        now = time.monotonic()
        if answer is Answer.THROTTLED:
            self.limiter.on_throttled(now)
        elif answer is not Answer.FAILED:
            latency = now - sent if answer is Answer.WRITTEN else None
            self.limiter.on_success(latency, now, self.in_flight)
        self._admit()

    def _admit(self) -> None:
        while self._waiters and self.in_flight < self.limiter.allowed:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)


class Answer(enum.Enum):
    """What the limiter learns from one request."""

    WRITTEN = "written"  # a write answered: its latency counts
    # A read answered (a page of a list: its size, not the load, sets its time), or any
    # answer on a new connection (its handshake was part of the time).
    READ = "read"
    THROTTLED = "throttled"  # 429, 503, or a timeout
    FAILED = "failed"  # any other failure: says nothing about load


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


DEFAULT_MAX_RESPONSE_BYTES = MAX_RESPONSE_BYTES


class ResponseTooLarge(Exception):
    """An answer longer than the configured bound; each sink turns it into its own error."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit:,} bytes (max_response_bytes)")
        self.limit = limit


# Headers that describe the body as it came over the wire, no longer true once it is decoded.
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


async def read_bounded(
    response: httpx.Response, request: httpx.Request, limit: int
) -> httpx.Response:
    """``response`` to ``request`` with its body read, decoded, and at most ``limit`` bytes.

    The bound holds for the decoded body, so a small compressed answer that inflates to
    gigabytes is stopped as well. Raises ResponseTooLarge (the connection is closed).
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        await response.aclose()
        raise ResponseTooLarge(limit)
    try:
        parts = [part async for part in _at_most(limit, response.aiter_bytes())]
    finally:
        await response.aclose()
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _WIRE_HEADERS]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=b"".join(parts),
        request=request,
        extensions=response.extensions,
    )


async def drain_bounded(response: httpx.Response, limit: int) -> None:
    """Read and drop an answer nobody needs, chunk by chunk, stopping past ``limit`` bytes."""
    try:
        async for _ in _at_most(limit, response.aiter_raw()):
            pass
    finally:
        await response.aclose()


async def _at_most(limit: int, parts: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``parts`` as they come, raising ResponseTooLarge once they add up to more than ``limit``."""
    size = 0
    async for part in parts:
        size += len(part)
        if size > limit:
            raise ResponseTooLarge(limit)
        yield part


class RedirectRefused(Exception):
    """An answer that sends syncd elsewhere (3xx): never followed, names where it points."""

    def __init__(self, status: int, location: str) -> None:
        super().__init__(f"a redirect (HTTP {status}) {redirect_target(location)}: not followed")
        self.status = status


async def refuse_redirects(response: httpx.Response) -> None:
    """httpx response hook: a 3xx answer fails the request instead of reaching the caller."""
    if 300 <= response.status_code < 400 and response.status_code != 304:
        await response.aclose()
        raise RedirectRefused(response.status_code, response.headers.get("location", ""))


class BoundedTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose answers are read whole, decoded and bounded (``read_bounded``)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        return await read_bounded(response, request, self._limit)

    async def aclose(self) -> None:
        await self._inner.aclose()
