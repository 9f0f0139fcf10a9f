"""The benchmarks' requests to the fakes themselves: their tokens, Graph lists and control API.

``run.py`` starts the fakes with these tokens and changes the tenant between cycles through the
fake Graph's control API (``/_fake/...``, see ``syncd/fakes/graph/control.py``); ``takeover.py``
also drifts the directory and reads what the fake Learnster holds.
"""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

GRAPH_TOKEN = "bench-graph-token"
LEARNSTER_TOKEN = "bench-learnster-token"
BULK_CHUNK = 5000  # users per bulk-update request to the fake Graph


def http_json(url: str, *, method: str = "GET", body: Any = None, token: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=120) as response:
        payload = response.read()
    return json.loads(payload) if payload else None


def control_url(graph_url: str, path: str) -> str:
    """The fake Graph's control route ``/_fake/<path>`` (``graph_url`` ends in ``/v1.0``)."""
    return f"{graph_url.rsplit('/v1.0', 1)[0]}/_fake/{path}"


def graph_list(url: str) -> Iterator[dict[str, Any]]:
    """Every object of a Graph list request, page by page (``@odata.nextLink``)."""
    next_url: str | None = url
    while next_url:
        page = http_json(next_url, token=GRAPH_TOKEN)
        yield from page["value"]
        next_url = page.get("@odata.nextLink")


def list_users(graph_url: str) -> Iterator[dict[str, Any]]:
    return graph_list(f"{graph_url}/users?$select=id,jobTitle&$top=999")


def change_users(graph_url: str, percent: float, seed: int) -> int:
    """Give ``percent`` % of the users a new jobTitle through the fake's control API."""
    users = list(list_users(graph_url))
    count = min(len(users), max(1 if percent > 0 else 0, round(len(users) * percent / 100)))
    retitle(graph_url, random.Random(seed).sample(users, count))
    return count


def retitle(graph_url: str, users: Sequence[dict[str, Any]]) -> None:
    """Give each of ``users`` (``id`` and ``jobTitle``) a new jobTitle, in bulk updates."""
    updates = [
        {"id": u["id"], "jobTitle": f"{u.get('jobTitle') or 'Staff'} (benchmark {i})"}
        for i, u in enumerate(users)
    ]
    control = control_url(graph_url, "users/bulk-update")
    for start in range(0, len(updates), BULK_CHUNK):
        http_json(control, method="POST", body=updates[start : start + BULK_CHUNK])
