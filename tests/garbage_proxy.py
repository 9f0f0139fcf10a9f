"""A proxy in front of a fake tenant that answers chosen requests with garbage.

Everything else is passed through unchanged, except that the upstream's own origin in answers
(Graph's nextLink and deltaLink) is rewritten to the proxy's, as a real reverse proxy would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from syncd.fakes._http import LoopbackServer, Request, Response

# Turns the upstream's answer (or None: not asked upstream) into the garbage to send.
Garble = Callable[[Response | None], Response]


@dataclass
class _Armed:
    method: str
    path_part: str
    garble: Garble
    times: int | None  # None: every time
    upstream: bool  # forward the request first (the garbage replaces a real answer)


class GarbageProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._client = httpx.Client(timeout=30)
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []
        self.served: list[str] = []  # "METHOD path" of each garbage answer sent
        self._server = LoopbackServer(self._answer)

    @property
    def origin(self) -> str:
        return self._server.origin

    def start(self) -> GarbageProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        self._client.close()

    def arm(
        self,
        method: str,
        path_part: str,
        garble: Garble,
        *,
        times: int | None = 1,
        upstream: bool = False,
    ) -> None:
        """Answer the next ``times`` ``method`` requests whose path contains ``path_part``."""
        with self._lock:
            self._armed.append(_Armed(method, path_part, garble, times, upstream))

    def disarm(self) -> None:
        with self._lock:
            self._armed.clear()

    def _take(self, request: Request) -> _Armed | None:
        with self._lock:
            for armed in self._armed:
                if armed.method == request.method and armed.path_part in request.path:
                    if armed.times is not None:
                        armed.times -= 1
                        if armed.times <= 0:
                            self._armed.remove(armed)
                    self.served.append(f"{request.method} {request.path}")
                    return armed
        return None

    def _answer(self, request: Request) -> Response:
        armed = self._take(request)
        if armed is not None and not armed.upstream:
            return armed.garble(None)
        real = self._forward(request)
        return armed.garble(real) if armed is not None else real

    def _forward(self, request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length")}
        headers["accept-encoding"] = "identity"
        url = self.upstream + request.path
        if request.query:
            url += "?" + urlencode(request.query)
        answer = self._client.request(
            request.method, url, headers=headers, content=request.body or None
        )
        body = answer.content.replace(self.upstream.encode(), self.origin.encode())
        keep = {
            k: v
            for k, v in answer.headers.items()
            if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")
        }
        return Response(answer.status_code, body, keep)


def html_page(status: int) -> Garble:
    """A proxy's own error page."""
    page = f"<html><head><title>{status}</title></head><body><h1>{status} Bad Gateway</h1>"
    return lambda _real: Response(
        status, (page + "<hr>nginx</body></html>").encode(), {"Content-Type": "text/html"}
    )


def body(status: int, content: bytes, content_type: str = "application/json") -> Garble:
    return lambda _real: Response(status, content, {"Content-Type": content_type})


def truncated(real: Response | None) -> Response:
    """The real answer cut in the middle, as a connection that ends early would leave it."""
    assert real is not None
    return Response(real.status, real.body[: len(real.body) // 2], real.headers)
