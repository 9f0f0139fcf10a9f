"""A small threaded HTTP(S) server on loopback shared by the fake tenants."""

from __future__ import annotations

import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

LOOPBACK = "127.0.0.1"


@dataclass
class Request:
    """One parsed HTTP request as the fakes see it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    # time.monotonic() when the request line arrived: a fake's latency counts from here, so
    # its own parsing and work are part of the latency rather than added to it
    received_at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Response:
    """What a fake answers; ``drop`` closes the connection without a reply (fault injection)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    @classmethod
    def json(
        cls, payload: Any, status: int = 200, content_type: str = "application/json"
    ) -> Response:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": content_type})


Handler = Callable[[Request], Response]


def answer_after(request: Request, latency_ms: float) -> None:
    """Wait until ``latency_ms`` after ``request`` arrived: a fake's own work counts in it.

    Called outside the fake's lock, so concurrent requests wait together.
    """
    answer_at(request.received_at, latency_ms)


def answer_at(started: float, latency_ms: float) -> None:
    """Wait until ``latency_ms`` after ``started`` (a monotonic time)."""
    if latency_ms > 0:
        remaining = started + latency_ms / 1000.0 - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real services do
    # Headers and body are separate writes: without this, Nagle + delayed ACK add ~40 ms each.
    disable_nagle_algorithm = True
    server: _Server

    received_at = 0.0

    def parse_request(self) -> bool:
        # Called as soon as the request line has been read, before the headers are parsed.
        self.received_at = time.monotonic()
        return super().parse_request()

    def setup(self) -> None:
        super().setup()
        with self.server.counts_lock:
            self.server.connections += 1
            self.server.open_connections += 1

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.counts_lock:
                self.server.open_connections -= 1

    def _serve(self) -> None:
        with self.server.counts_lock:
            self.server.in_flight += 1
            self.server.peak_in_flight = max(self.server.peak_in_flight, self.server.in_flight)
        try:
            self._serve_one()
        finally:
            with self.server.counts_lock:
                self.server.in_flight -= 1

    def _serve_one(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = Request(self.command, parts.path, query, headers, body, self.received_at)
        try:
            response = self.server.app(request)
        except Exception as exc:  # a fake must answer, not hang the client
            response = Response.json({"error": f"fake server error: {exc!r}"}, 500)
        if response.drop:
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body and self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def handle(self) -> None:
        try:
            super().handle()
        except ConnectionError:  # the client gave up (e.g. timed out): not a server error
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: Handler) -> None:
        self.app = app
        # What a client's connection handling looks like from here (tests of concurrency).
        self.counts_lock = threading.Lock()
        self.connections = 0  # TCP connections accepted
        self.open_connections = 0  # accepted and not yet closed
        self.in_flight = 0
        self.peak_in_flight = 0  # most requests being served at once
        super().__init__(address, _RequestHandler)


class LoopbackServer:
    """Serves ``app`` on 127.0.0.1 (or another loopback address) in a thread, optionally TLS."""

    def __init__(
        self,
        app: Handler,
        *,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        host: str = LOOPBACK,
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"{host} is not a loopback address: the fakes serve loopback only")
        self.host = host
        self._server = _Server((host, port), app)
        if ssl_context is not None:
            # Handshake in the handler thread, so one silent client cannot block the others.
            self._server.socket = ssl_context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.tls = ssl_context is not None
        self._thread: threading.Thread | None = None

    @property
    def connections(self) -> int:
        """TCP connections accepted so far."""
        return self._server.connections

    @property
    def open_connections(self) -> int:
        """TCP connections accepted and not yet closed (by either side)."""
        return self._server.open_connections

    @property
    def peak_in_flight(self) -> int:
        """The most requests served at the same time so far."""
        return self._server.peak_in_flight

    def reset_peak(self) -> None:
        """Count ``peak_in_flight`` from now on."""
        with self._server.counts_lock:
            self._server.peak_in_flight = 0

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() returns promptly
            name=f"fake-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket (also when never started)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
