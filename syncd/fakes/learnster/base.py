"""What the parts of the fake Learnster share: the lock, the base URL and SCIM JSON answers."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from syncd.fakes._http import Response
from syncd.fakes.learnster.schema import CONTENT_TYPE, Resource

if TYPE_CHECKING:
    from syncd.fakes.learnster.projection import _Projection


class _LearnsterBase:
    """The state every part reads (``FakeLearnster.__init__`` sets it) and their JSON answers."""

    base_url: str
    page_size_max: int
    _lock: threading.Lock

    @staticmethod
    def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(
            status,
            json.dumps(payload, ensure_ascii=False).encode(),
            {"Content-Type": CONTENT_TYPE, **(headers or {})},
        )

    def _resource_response(
        self, resource: Resource, status: int = 200, projection: _Projection | None = None
    ) -> Response:
        meta = resource["meta"]
        headers = {"ETag": meta["version"]}
        if status == 201:
            headers["Location"] = meta["location"]
        payload = projection.apply(resource) if projection is not None else resource
        return self._json(payload, status, headers)
