"""What every part of the fake Graph shares: its API error, its JSON answers and its addresses."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from syncd.fakes._http import LoopbackServer, Request, Response

_JSON_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)
_DELTA_SEGMENTS = frozenset(
    {"delta", "delta()", "microsoft.graph.delta", "microsoft.graph.delta()"}
)


class _ApiError(Exception):
    """Raised inside request handling; becomes Graph's error envelope."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _GraphBase:
    """The state every part reads (``FakeGraph.__init__`` sets it) and the answers they share."""

    tenant_id: str
    tenant_guid: str
    _lock: threading.RLock
    _server: LoopbackServer

    @property
    def origin(self) -> str:
        """``http(s)://127.0.0.1:PORT``."""
        return self._server.origin

    @property
    def base_url(self) -> str:
        """The Graph API root, e.g. ``http://127.0.0.1:PORT/v1.0``."""
        return f"{self._server.origin}/v1.0"

    def _ok(self, req: Request, payload: Any, status: int = 200) -> Response:
        headers = {
            "Content-Type": _JSON_TYPE,
            "OData-Version": "4.0",
            "request-id": str(uuid.uuid4()),
            "client-request-id": req.headers.get("client-request-id") or str(uuid.uuid4()),
        }
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        try:
            body = text.encode()
        except UnicodeEncodeError:  # a lone surrogate: Graph sends it as a \uXXXX escape
            body = json.dumps(payload, separators=(",", ":")).encode()
        return Response(status, body, headers)
