"""ScimSink: Learnster's SCIM 2.0 API over httpx, with retries; each failure one class of syncd.errors."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from syncd import __version__
from syncd.adapters.origin import shown
from syncd.adapters.scim_replies import (
    SeenIds,
    classify,
    filter_string,
    is_valid_id,
    json_of,
    list_resources,
    once,
    resource_of,
    resource_path,
)
from syncd.adapters.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Answer,
    Gate,
    Pacer,
    ResponseTooLarge,
    SendWatch,
    connection_options,
    drain_bounded,
    read_bounded,
)
from syncd.config import Config, learnster_token
from syncd.core.limiter import ConcurrencyLimiter, Learned, LimiterState
from syncd.core.messages import PATCH_SCHEMA, work_email_key
from syncd.core.records import user_name_key
from syncd.credentials import Secret
from syncd.errors import (
    BadResponseError,
    NotFoundError,
    ScimError,
    TransientError,
    Unreachable,
)

if TYPE_CHECKING:
    from tenacity import AsyncRetrying, RetryCallState

SCIM_JSON = "application/scim+json"
LIST_PAGE_SIZE = 500


# Methods whose successful answer syncd never reads (200 with a body and 204 are both fine).
_ANSWER_UNUSED = frozenset({"PATCH", "DELETE"})


def _answer(method: str, status: int, fresh: bool) -> Answer:
    """What an answer tells the concurrency limiter (``fresh``: on a new connection)."""
    if status in (429, 503):
        return Answer.THROTTLED
    if status >= 500:
        return Answer.FAILED
    return Answer.READ if method == "GET" or fresh else Answer.WRITTEN


@contextlib.contextmanager
def _down_when_refused(tenant_url: str) -> Iterator[None]:
    """A refused connection that outlasted the retries: Learnster is down, stop the cycle."""
    try:
        yield
    except TransientError as exc:
        if exc.unreachable:
            raise Unreachable(f"cannot reach Learnster at {shown(tenant_url)}: {exc}") from exc
        raise


class ScimSink:
    """One Learnster tenant. Bounded concurrency, keep-alive connections, tenacity retries."""

    def __init__(
        self,
        tenant_url: str,
        token: Secret,
        *,
        max_concurrency: int = 8,
        timeout_seconds: float = 60.0,
        ca_file: str = "",
        max_attempts: int = 5,
        max_retry_seconds: float = 120.0,
        backoff_base: float = 0.5,
        max_requests_per_second: float = 0.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        learned: Learned | None = None,
    ) -> None:
        self.tenant_url = tenant_url.rstrip("/")
        # Requests go straight to httpx's transport, one single-connection transport per
        # concurrent request: the client layer above it (URL merging, cookies, auth and
        # redirect hooks, a pool that checks every idle connection) cost a quarter of syncd's
        # CPU per request, and syncd needs none of it (profiled at 100,000 users).
        self._new_transport = functools.partial(
            httpx.AsyncHTTPTransport,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            **connection_options(self.tenant_url, ca_file),  # one TLS context for all
        )
        self._headers = {
            "Authorization": f"Bearer {token.reveal()}",
            "Accept": SCIM_JSON,
            "Accept-Encoding": "gzip, deflate",
            "User-Agent": f"syncd/{__version__}",
        }
        self._timeout = httpx.Timeout(timeout_seconds).as_dict()
        # max_concurrency is a ceiling: the limiter finds what Learnster takes below it.
        limiter = ConcurrencyLimiter(
            max_concurrency, initial=min(max_concurrency, 8), learned=learned
        )
        self._gate = Gate(limiter)
        # Pages of a list read at a time: more costs memory (each a few MB parsed) for little.
        self._width = min(max_concurrency, 4)
        self._idle: list[httpx.AsyncHTTPTransport] = []
        self._transports: list[httpx.AsyncHTTPTransport] = []
        self._pacer = Pacer(max_requests_per_second) if max_requests_per_second > 0 else None
        self._max_attempts = max_attempts
        self._max_response_bytes = max_response_bytes
        self._max_retry_seconds = max_retry_seconds
        self._backoff_base = backoff_base
        self._sends_watched: SendWatch | None = None
        self.requests: Counter[str] = Counter()  # "POST /Users" -> count, for reports and tests
        # externalIds whose POST /Groups may have been applied more than once (see create_group)
        self.groups_in_doubt: set[str] = set()

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> ScimSink:
        """The sink ``[learnster]`` describes (the Secret Token read now, never stored)."""
        settings: dict[str, Any] = {
            "max_concurrency": config.learnster.max_concurrency,
            "timeout_seconds": config.learnster.timeout_seconds,
            "ca_file": config.learnster.ca_file,
            "max_requests_per_second": config.learnster.max_requests_per_second,
            "max_response_bytes": config.learnster.max_response_bytes,
        }
        settings.update(overrides)
        return cls(config.learnster.tenant_url, learnster_token(config), **settings)

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()
        self._transports.clear()
        self._idle.clear()

    async def __aenter__(self) -> ScimSink:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- transport --------------------------------------------------------------------------

    def sending(self) -> LimiterState:
        """The concurrency limiter's state: for the report, the metrics and the progress line."""
        return self._gate.limiter.state()

    def watch_sends(self, count: int) -> asyncio.Event:
        """An event set once the next ``count`` requests are written and awaiting answers.

        The time until Learnster answers them is free for other work (``Applier.apply``).
        """
        watch = SendWatch(count, self._stop_watching)
        self._sends_watched = watch
        if count <= 0:
            watch.done()
        return watch.written

    def _stop_watching(self, watch: SendWatch) -> None:
        if self._sends_watched is watch:
            self._sends_watched = None

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return exc.retry_after
        # Exponential backoff with full jitter.
        return random.uniform(0, self._backoff_base * 2 ** (state.attempt_number - 1))

    def _retrying(self) -> AsyncRetrying:
        # Imported on the first retry: most cycles never need one.
        from tenacity import (
            AsyncRetrying,
            retry_if_exception_type,
            stop_after_attempt,
            stop_after_delay,
        )

        return AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self._max_attempts) | stop_after_delay(self._max_retry_seconds),
            wait=self._wait,
            reraise=True,
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        # The first attempt runs outside tenacity: most requests need no other, and setting
        # up its retry loop cost ~8 % of a request's CPU (measured on 3,000 PATCHes).
        try:
            return await self._send_once(method, path, body=body, params=params)
        except TransientError as exc:
            failed: TransientError | None = exc
        with _down_when_refused(self.tenant_url):
            async for attempt in self._retrying():
                with attempt:
                    if failed is not None:  # replayed as attempt 1: tenacity waits, counts it
                        error, failed = failed, None
                        raise error
                    return await self._send_once(method, path, body=body, params=params)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_once(
        self, method: str, path: str, *, body: Any, params: Mapping[str, str] | None
    ) -> httpx.Response:
        kind = f"{method} /{path.strip('/').split('/')[0]}"
        self.requests[kind] += 1
        headers = self._headers
        content = None
        if body is not None:
            try:
                content = json.dumps(body, ensure_ascii=False).encode()
            except UnicodeEncodeError:  # a lone surrogate: send it escaped, as JSON allows
                content = json.dumps(body).encode()
            headers = {**headers, "Content-Type": SCIM_JSON}
        url = self.tenant_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
        request = httpx.Request(
            method, url, headers=headers, content=content, extensions={"timeout": self._timeout}
        )
        if self._pacer is not None:
            await self._pacer.wait()
        sent = await self._gate.acquire()
        answer = Answer.FAILED
        try:
            fresh = not self._idle
            if fresh:  # created on first need: a small cycle uses one or two
                self._transports.append(self._new_transport())
                self._idle.append(self._transports[-1])
            transport = self._idle.pop()  # the most recently used: its connection is warm
            if self._sends_watched is not None:  # set here: it counts what goes out from now
                request.extensions["trace"] = self._sends_watched.trace
            try:
                response = await self._exchange(transport, request)
                # A new connection's handshake is no part of Learnster's latency.
                answer = _answer(method, response.status_code, fresh)
            except ResponseTooLarge as exc:
                raise BadResponseError(f"{method} {path}: {exc}") from None
            except httpx.TimeoutException as exc:
                answer = Answer.THROTTLED
                raise TransientError(f"{method} {path}: timed out ({type(exc).__name__})") from exc
            except httpx.DecodingError as exc:  # a body its Content-Encoding does not describe
                raise BadResponseError(
                    f"{method} {path}: Learnster's answer cannot be decompressed ({exc})"
                ) from None
            except httpx.TransportError as exc:
                raise TransientError(
                    f"{method} {path}: connection failed ({type(exc).__name__})",
                    unreachable=isinstance(exc, httpx.ConnectError),
                ) from exc
            finally:
                self._idle.append(transport)
        finally:
            self._gate.release(sent, answer)
        if response.status_code < 300:
            return response
        raise classify(method, path, response)

    async def _exchange(
        self, transport: httpx.AsyncHTTPTransport, request: httpx.Request
    ) -> httpx.Response:
        response = await transport.handle_async_request(request)
        response.request = request
        if response.status_code < 300 and request.method in _ANSWER_UNUSED:
            # Dropped chunk by chunk, never joined into one body: a server that ignores
            # excludedAttributes answers a tag PATCH with the whole tag.
            await drain_bounded(response, self._max_response_bytes)
            return response
        return await read_bounded(response, request, self._max_response_bytes)

    # -- users ------------------------------------------------------------------------------

    async def create_user(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        response = await self._request("POST", "/Users", body=resource)
        return resource_of("POST", "/Users", response)

    async def patch_user(self, scim_id: str, operations: Sequence[Mapping[str, Any]]) -> None:
        await self._patch(resource_path("Users", scim_id), operations)

    async def delete_user(self, scim_id: str) -> None:
        await self._request("DELETE", resource_path("Users", scim_id))

    async def get_user(self, scim_id: str) -> dict[str, Any]:
        path = resource_path("Users", scim_id)
        return resource_of("GET", path, await self._request("GET", path))

    async def find_user(self, user_name: str) -> dict[str, Any] | None:
        """The Learnster user whose userName equals ``user_name`` (case-insensitively)."""
        params = {"filter": f"userName eq {filter_string(user_name)}"}
        response = await self._request("GET", "/Users", params=params)
        for resource in list_resources("GET /Users", response):
            if user_name_key(str(resource.get("userName", ""))) == user_name_key(user_name):
                return resource
        return None

    async def find_users_by_email(self, address: str) -> list[dict[str, Any]]:
        """The Learnster users whose work e-mail is ``address`` (case-insensitively)."""
        quoted = filter_string(address)
        params = {"filter": f'emails[type eq "work" and value eq {quoted}]'}
        response = await self._request("GET", "/Users", params=params)
        return [
            resource
            for resource in once(list_resources("GET /Users", response))
            if work_email_key(resource) == user_name_key(address)
        ]

    async def iter_users(self, page_size: int = LIST_PAGE_SIZE) -> AsyncIterator[dict[str, Any]]:
        async for resource in self._iter("/Users", page_size):
            yield resource

    # -- groups -----------------------------------------------------------------------------

    async def create_group(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """POST a group; a retry first looks for it, since tag names are not unique.

        A POST that timed out or lost its answer may have been applied: posting again would
        make a second tag ("Sales (2)"), so before each retry the group is looked up by its
        externalId (the Graph object id).
        """
        external_id = resource.get("externalId")
        with _down_when_refused(self.tenant_url):
            async for attempt in self._retrying():
                with attempt:
                    if attempt.retry_state.attempt_number > 1 and isinstance(external_id, str):
                        # The earlier POST may still land after this lookup: settle it later.
                        self.groups_in_doubt.add(external_id)
                        found = await self.find_groups(external_id)
                        if found:
                            return found[0]
                    response = await self._send_once("POST", "/Groups", body=resource, params=None)
                    return resource_of("POST", "/Groups", response)
        raise AssertionError("unreachable")  # pragma: no cover

    async def find_groups(self, external_id: str) -> list[dict[str, Any]]:
        """Every Learnster group whose externalId is ``external_id`` (normally one)."""
        params = {"filter": f"externalId eq {filter_string(external_id)}"}
        response = await self._request("GET", "/Groups", params=params)
        return [
            r
            for r in once(list_resources("GET /Groups", response))
            if r.get("externalId") == external_id
        ]

    async def patch_group(self, scim_id: str, operations: Sequence[Mapping[str, Any]]) -> None:
        # A tag's answer would list all its members (30,000 for "everyone" at 100,000 users)
        # for every batch of 100 added; RFC 7644 §3.9 lets the client leave them out.
        await self._patch(
            resource_path("Groups", scim_id), operations, params={"excludedAttributes": "members"}
        )

    async def group_members(self, scim_id: str) -> list[str]:
        """The Learnster ids of a tag's members, read once (RFC 7644 §3.9: only ``members``)."""
        path = resource_path("Groups", scim_id)
        response = await self._request("GET", path, params={"attributes": "members"})
        members = resource_of("GET", path, response).get("members") or []
        if not isinstance(members, list):
            raise BadResponseError(f"GET {path}: members is not a list")
        values = (str(m["value"]) for m in members if isinstance(m, Mapping) and m.get("value"))
        return [v for v in values if is_valid_id(v)]

    async def delete_group(self, scim_id: str) -> None:
        await self._request("DELETE", resource_path("Groups", scim_id))

    async def iter_groups(
        self, page_size: int = LIST_PAGE_SIZE, attributes: str = "displayName,externalId"
    ) -> AsyncIterator[dict[str, Any]]:
        async for resource in self._iter("/Groups", page_size, attributes=attributes):
            yield resource

    # -- helpers ----------------------------------------------------------------------------

    async def _patch(
        self,
        path: str,
        operations: Sequence[Mapping[str, Any]],
        params: Mapping[str, str] | None = None,
    ) -> None:
        body = {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}
        # 200 with a body or 204: both fine
        await self._request("PATCH", path, body=body, params=params)

    async def _iter(
        self, path: str, page_size: int, attributes: str = ""
    ) -> AsyncIterator[dict[str, Any]]:
        """Every resource of a list, once, in pages: after the first, several at a time.

        The first page's length is the stride. A page shorter than it before the end, or a
        page as full as asked where the total said the list ends (a total that lies), makes
        the rest be read one page after the other, until a page comes back short.
        """
        resources, total = await self._page(path, 1, page_size, attributes)
        seen = SeenIds(path, patience=self._width)  # more than a batch: not a list that moved
        for resource in seen.fresh(resources, 1):
            yield resource
        stride, start, last = len(resources), 1 + len(resources), len(resources)
        while stride and start <= total:
            starts = range(start, min(total, start + stride * self._width - 1) + 1, stride)
            pages = await asyncio.gather(
                *(self._page(path, s, page_size, attributes) for s in starts)
            )
            for at, (resources, _) in zip(starts, pages, strict=True):
                for resource in seen.fresh(resources, at):
                    yield resource
            short = next((i for i, (r, _) in enumerate(pages) if len(r) < stride), None)
            last = len(pages[-1 if short is None else short][0])
            if short is not None:
                start = starts[short] + last
                break
            start = starts[-1] + stride
        # One page after the other: what is left before the total, or past it while pages come
        # back as full as asked, or as the first when more came than the total claims (a total
        # that lies, with a server's own page size).
        while last and (
            start <= total or last == page_size or (start > total + 1 and last >= stride)
        ):
            resources, total = await self._page(path, start, page_size, attributes)
            for resource in seen.fresh(resources, start):
                yield resource
            start, last = start + len(resources), len(resources)

    async def _page(
        self, path: str, start: int, page_size: int, attributes: str
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of a list and the total the server says the list has."""
        params = {"startIndex": str(start), "count": str(page_size)}
        if attributes:
            params["attributes"] = attributes
        response = await self._request("GET", path, params=params)
        resources = list_resources(f"GET {path}", response)
        total = json_of(response).get("totalResults", 0)
        try:
            return resources, int(total)
        except (TypeError, ValueError, OverflowError):  # OverflowError: Infinity, 1e400
            raise BadResponseError(f"GET {path}: totalResults is not a number") from None

    async def check(self, probe_user_name: str) -> None:
        """Test connection: a filter for a user that cannot exist must give an empty list."""
        try:
            params = {"filter": f"userName eq {filter_string(probe_user_name)}"}
            response = await self._request("GET", "/Users", params=params)
        except Unreachable as exc:
            raise Unreachable(
                f"cannot reach Learnster at {self.tenant_url}: {exc.__cause__}"
            ) from exc
        except TransientError as exc:
            raise Unreachable(f"cannot reach Learnster at {self.tenant_url}: {exc}") from exc
        except NotFoundError:
            raise Unreachable(
                f"Learnster has no SCIM endpoint at {self.tenant_url} (404): check the Tenant URL"
            ) from None
        except ScimError as exc:
            raise Unreachable(
                f"Learnster at {self.tenant_url} refused the test query: {exc}"
            ) from exc
        try:
            payload = json_of(response)
        except ValueError:
            raise Unreachable(
                f"{self.tenant_url} did not answer with SCIM JSON: check the Tenant URL"
            ) from None
        if not isinstance(payload, dict) or payload.get("totalResults") != 0:
            raise Unreachable(
                f"{self.tenant_url} answered the test query unexpectedly: check the Tenant URL"
            )
