"""The fake Learnster's HTTP server: the FakeLearnster class, its lifecycle, helpers and routing."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from syncd.fakes._http import LoopbackServer, Request, Response, answer_at
from syncd.fakes.learnster.capacity import TokenBucket, Workers
from syncd.fakes.learnster.discovery import _Discovery
from syncd.fakes.learnster.endpoints import _Endpoints
from syncd.fakes.learnster.faults import _Fault, _Faults
from syncd.fakes.learnster.schema import GROUP, PREFIX, USER, Resource
from syncd.fakes.learnster.store import _Kind
from syncd.fakes.learnster.values import ScimFault


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the fake saw it; ``status`` is 0 when the connection was dropped."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    fault: str | None = None


TIMING_PATH = "/_fake/timing"  # outside the SCIM prefix, answered without a token

# --------------------------------------------------------------------------- the fake


class FakeLearnster(_Endpoints, _Discovery, _Faults):
    """Learnster's SCIM 2.0 endpoint on 127.0.0.1, for tests, demos and benchmarks.

    The socket is bound on construction (so ``base_url`` is known before ``start``); ``start``
    serves in a background thread. ``users``/``groups`` map ids to the stored resources exactly
    as served (read them, do not mutate them); ``requests`` logs every request.
    """

    def __init__(
        self,
        *,
        token: str = "learnster-token",  # noqa: S107 - a fake's well-known test token
        port: int = 0,
        latency_ms: float = 0.0,
        fault_rate: float = 0.0,
        seed: int = 0,
        page_size_max: int = 1000,
        rate_limit: float = 0.0,
        rate_burst: float = 0.0,
        capacity: int = 0,
    ) -> None:
        self.token = token
        # The capacity model (capacity.py): None when unlimited.
        self.bucket = TokenBucket(rate_limit, rate_burst) if rate_limit > 0 else None
        self.workers = Workers(capacity) if capacity > 0 else None
        self.page_size_max = page_size_max
        self._settings = (latency_ms, fault_rate, seed)
        self.users: dict[str, Resource] = {}
        self.groups: dict[str, Resource] = {}
        self.requests: list[LoggedRequest] = []
        # time.monotonic() (one clock for every process on the host) of the first request
        # since the last reset: how long a syncd process took to its first request (bench).
        self.first_request_at: float | None = None
        self._lock = threading.Lock()
        self._scripted: deque[_Fault] = deque()
        self._rejections: dict[str, ScimFault] = {}
        self._users = _Kind(USER, self.users)
        self._groups = _Kind(GROUP, self.groups)
        self._members: dict[str, set[str]] = {}  # group id -> user ids
        self._user_groups: dict[str, set[str]] = {}  # user id -> group ids
        self._reports: dict[str, set[str]] = {}  # manager id -> user ids
        self._counter = 0
        self._configure()
        self._server = LoopbackServer(self._app, port=port)
        self.base_url = f"{self._server.origin}{PREFIX}"
        self._discovery = self._build_discovery()
        self._running = False

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> FakeLearnster:
        """Serve in a background thread; returns ``self``."""
        if not self._running:
            self._server.start()
            self._running = True
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (also for a fake that was never started)."""
        self._running = False
        self._server.stop()

    @property
    def server(self) -> LoopbackServer:
        """The HTTP server (its ``connections`` and ``peak_in_flight`` counts)."""
        return self._server

    def __enter__(self) -> FakeLearnster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _configure(self) -> None:
        latency_ms, fault_rate, seed = self._settings
        self.latency_ms = latency_ms
        self.fault_rate = fault_rate
        self._rng = random.Random(seed)
        # How long a "slow" fault delays its response: longer than the client's timeout.
        self.slow_seconds = 5.0
        # Base of the Retry-After values random 429/503s carry.
        self.retry_after_seconds = 1.0
        self.patch_returns_204 = False
        self.patch_honours_projection = True  # False: PATCH answers the whole resource anyway
        self.enforce_e164 = True
        self.log_requests = True

    # ---------------------------------------------------------------- test helpers

    def reset(self) -> None:
        """Forget every resource, the log, rejections and scripted faults, and restore the
        constructor's settings: one running fake can serve many tests."""
        with self._lock:
            for kind in (self._users, self._groups):
                kind.items.clear()
                kind.by_name.clear()
                kind.by_external.clear()
                kind.seq.clear()
            for index in (self._members, self._user_groups, self._reports, self._rejections):
                index.clear()
            self._scripted.clear()
            self.requests.clear()
            self._configure()

    def add_user(self, resource: dict[str, Any]) -> str:
        """Store a user as if someone else had created it (brownfield); returns its id.

        The same rules as a POST apply (raises :class:`ScimFault`); an ``id`` in ``resource``
        is kept, so tests can choose ids.
        """
        with self._lock:
            return str(self._create(self._users, resource, require_schemas=False)["id"])

    def add_group(self, resource: dict[str, Any]) -> str:
        """Store a group (tag) as if someone else had created it; returns its id."""
        with self._lock:
            return str(self._create(self._groups, resource, require_schemas=False)["id"])

    def user_by_username(self, user_name: str) -> Resource | None:
        """The stored user whose userName matches case-insensitively, else ``None``."""
        with self._lock:
            uid = self._users.by_name.get(user_name.lower())
            return None if uid is None else self.users[uid]

    def group_by_external_id(self, external_id: str) -> Resource | None:
        """The first stored group with this ``externalId``, else ``None``."""
        with self._lock:
            ids = self._groups.by_external.get(external_id)
            if not ids:
                return None
            return self.groups[min(ids, key=self._groups.seq.__getitem__)]

    def reject(
        self,
        user_name: str,
        status: int = 400,
        detail: str = "Learnster rejected this user",
        scim_type: str | None = "invalidValue",
    ) -> None:
        """Answer any write (POST/PUT/PATCH/DELETE) for this userName with this error."""
        with self._lock:
            self._rejections[user_name.lower()] = ScimFault(status, detail, scim_type)

    def clear_rejections(self) -> None:
        """Forget every ``reject``."""
        with self._lock:
            self._rejections.clear()

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self._lock:
            self.requests.clear()

    # ---------------------------------------------------------------- HTTP entry point

    def _app(self, request: Request) -> Response:
        if request.path == TIMING_PATH:
            return self._timing(request)
        with self._lock:
            if self.first_request_at is None:
                self.first_request_at = request.received_at
        if self.bucket is not None:
            retry_after = self.bucket.take()
            if retry_after is not None:  # answered at once: a rate limit costs the server little
                self._log(request, None, 429, "rate limit")
                fault = ScimFault(429, "too many requests", None, {"Retry-After": str(retry_after)})
                return fault.response()
        if self.workers is None:
            return self._serve(request, request.received_at)
        with self.workers.serving() as started:
            return self._serve(request, max(started, request.received_at))

    def _timing(self, request: Request) -> Response:
        """``GET /_fake/timing``: ``{"first_request_at": monotonic|null}``; ``DELETE`` resets."""
        with self._lock:
            if request.method == "DELETE":
                self.first_request_at = None
                return Response(204)
            return Response.json({"first_request_at": self.first_request_at})

    def _serve(self, request: Request, started: float) -> Response:
        path = request.path
        rel = path[len(PREFIX) :] if path == PREFIX or path.startswith(PREFIX + "/") else None
        try:
            body: Any = json.loads(request.body) if request.body else None
            body_ok = True
        except ValueError:
            body, body_ok = None, False
        fault: _Fault | None = None
        try:
            if not self._authorized(request):
                raise ScimFault(
                    401, "missing or invalid bearer token", None, {"WWW-Authenticate": "Bearer"}
                )
            fault = self._next_fault()
            if fault is not None and fault.kind == "drop":
                response = Response(drop=True)
            elif fault is not None and fault.kind == "status":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                raise ScimFault(fault.status, f"injected fault ({fault.label})", None, headers)
            else:
                if fault is not None:
                    time.sleep(fault.seconds)
                if rel is None:
                    raise ScimFault(404, f"no SCIM endpoint at {path}")
                if not body_ok:
                    raise ScimFault(400, "request body is not valid JSON", "invalidSyntax")
                response = self._route(request, rel, body)
        except ScimFault as exc:
            response = exc.response()
        except Exception as exc:  # a fake must answer in SCIM, whatever went wrong
            response = ScimFault(500, f"fake Learnster error: {exc!r}").response()
        label = fault.label if fault is not None else None
        self._log(request, body, 0 if response.drop else response.status, label)
        answer_at(started, self.latency_ms)
        return response

    def _log(self, request: Request, body: Any, status: int, label: str | None) -> None:
        if self.log_requests:
            path = request.path
            rel = path[len(PREFIX) :] if path == PREFIX or path.startswith(PREFIX + "/") else path
            entry = LoggedRequest(
                request.method, rel, dict(request.query), body, status, request.headers, label
            )
            with self._lock:
                self.requests.append(entry)

    def _authorized(self, request: Request) -> bool:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and credential.strip() == self.token

    # ---------------------------------------------------------------- routing

    def _route(self, request: Request, rel: str, body: Any) -> Response:
        parts = [unquote(p) for p in rel.strip("/").split("/")] if rel.strip("/") else []
        method = request.method
        if not parts:
            raise ScimFault(404, "no resource at the SCIM root")
        head = parts[0]
        if head in ("Users", "Groups"):
            kind = self._users if head == "Users" else self._groups
            if len(parts) == 1:
                if method == "GET":
                    return self._list([kind], self._query_params(request.query))
                if method == "POST":
                    return self._post(kind, body)
                raise self._not_allowed("GET, POST")
            if len(parts) == 2 and parts[1] == ".search":
                if method == "POST":
                    return self._list([kind], self._search_params(body))
                raise self._not_allowed("POST")
            if len(parts) == 2:
                rid = parts[1]
                if method == "GET":
                    return self._get(kind, rid, request)
                if method == "PUT":
                    return self._put(kind, rid, body, request)
                if method == "PATCH":
                    return self._patch(kind, rid, body, request)
                if method == "DELETE":
                    return self._delete(kind, rid, request)
                raise self._not_allowed("GET, PUT, PATCH, DELETE")
            raise ScimFault(404, f"no SCIM endpoint at {rel}")
        if head == ".search" and len(parts) == 1:
            if method != "POST":
                raise self._not_allowed("POST")
            return self._list([self._users, self._groups], self._search_params(body))
        if head in ("ServiceProviderConfig", "ResourceTypes", "Schemas"):
            if method != "GET":
                raise self._not_allowed("GET")
            return self._discovery_response(parts)
        if head == "Bulk" and len(parts) == 1:
            raise ScimFault(501, "bulk operations are not supported")
        raise ScimFault(404, f"no SCIM endpoint at {rel}")

    @staticmethod
    def _not_allowed(allow: str) -> ScimFault:
        return ScimFault(405, "method not allowed on this endpoint", None, {"Allow": allow})
