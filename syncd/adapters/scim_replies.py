"""What Learnster's answers mean: a failed request's error class, a resource, a list; paths.

No I/O: the sink hands these the response it read.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, TypeGuard

import httpx

from syncd.adapters.origin import redirect_target
from syncd.adapters.transport import parse_retry_after
from syncd.errors import (
    BadResponseError,
    ConflictError,
    CredentialsRefused,
    NotFoundError,
    PermissionDenied,
    RejectedError,
    SyncdError,
    TransientError,
)

_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def resource_path(endpoint: str, scim_id: str) -> str:
    """The path of one resource. Its id comes from Learnster: whatever it holds ("/", "?",
    "..") stays inside the one path segment instead of naming another resource."""
    if not scim_id:
        raise BadResponseError(f"{endpoint}: a resource without a Learnster id")
    segment = urllib.parse.quote(scim_id, safe="")
    if segment in (".", ".."):  # dot segments are resolved away by URL parsers
        segment = segment.replace(".", "%2E")
    return f"/{endpoint}/{segment}"


def is_valid_id(value: Any) -> TypeGuard[str]:
    """Whether ``value`` is an id syncd can address, send and store: a non-empty string of
    valid Unicode (JSON's escapes allow a lone surrogate, which is not)."""
    return (
        isinstance(value, str)
        and bool(value)
        and (value.isascii() or not _LONE_SURROGATE.search(value))
    )


def has_id(resource: Any) -> TypeGuard[dict[str, Any]]:
    """Whether a reply's resource carries an id syncd can address it by."""
    return isinstance(resource, dict) and is_valid_id(resource.get("id"))


def json_of(response: httpx.Response) -> Any:
    """The reply's JSON; ValueError when it is none, also when nested deeper than Python's
    parser reads."""
    try:
        return response.json()
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def filter_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def classify(method: str, path: str, response: httpx.Response) -> SyncdError:
    status = response.status_code
    detail, scim_type, other = "", "", ""
    try:
        payload = json_of(response)
        if isinstance(payload, Mapping):
            detail = str(payload.get("detail") or "")
            scim_type = str(payload.get("scimType") or "")
    except ValueError:
        other = _not_scim(response)  # not Learnster's words: in the message, not its detail
    where = f"{method} {path}: HTTP {status}"
    message = f"{where}: {detail or other}" if detail or other else where
    if 300 <= status < 400:  # never followed: the Secret Token stays with tenant_url
        location = response.headers.get("location", "")
        return RejectedError(
            f"{where}: a redirect {redirect_target(location)}: not followed", status=status
        )
    if status == 401:
        return CredentialsRefused(
            "Learnster refused the request (401): the Secret Token is wrong or expired"
        )
    if status == 403:
        return PermissionDenied(
            "Learnster refused the request (403): the Secret Token is not allowed to do this"
        )
    if status == 404:
        return NotFoundError(message, status=status, detail=detail, scim_type=scim_type)
    if status == 409:
        return ConflictError(message, status=status, detail=detail, scim_type=scim_type)
    if status == 429 or status >= 500:
        return TransientError(
            message,
            status=status,
            detail=detail,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    return RejectedError(message, status=status, detail=detail, scim_type=scim_type)


def _not_scim(response: httpx.Response) -> str:
    """What a failed answer that is not SCIM JSON was: a proxy's page says little else."""
    try:
        text = response.text
    except ValueError:  # a charset the body does not match (odd-length UTF-16)
        text = response.content[:4096].decode("utf-8", "replace")
    if "<html" in text[:500].lower():
        match = _TITLE.search(text[:4096])
        title = " ".join(match.group(1).split())[:80] if match else ""
        return "not Learnster's SCIM: an HTML page" + (f" titled {title!r}" if title else "")
    return text[:200]


def resource_of(method: str, path: str, response: httpx.Response) -> dict[str, Any]:
    try:
        payload = json_of(response)
    except ValueError:
        raise BadResponseError(
            f"{method} {path}: Learnster answered {response.status_code} without JSON"
        ) from None
    if not has_id(payload):
        raise BadResponseError(f"{method} {path}: Learnster's reply has no resource id")
    return payload


def list_resources(where: str, response: httpx.Response) -> list[dict[str, Any]]:
    try:
        payload = json_of(response)
    except ValueError:
        raise BadResponseError(f"{where}: Learnster's list reply is not JSON") from None
    if not isinstance(payload, dict):
        raise BadResponseError(f"{where}: Learnster's list reply is not a ListResponse")
    resources = payload.get("Resources", [])
    if not isinstance(resources, list):
        raise BadResponseError(f"{where}: Resources is not a list")
    return [r for r in resources if has_id(r)]


class SeenIds:
    """The ids a list read has yielded, and how many pages in a row brought no other: a server
    that ignores startIndex answers every page with the first, as full, for ever."""

    def __init__(self, path: str, patience: int) -> None:
        self._ids: set[str] = set()
        self._stale = 0
        self._path = path
        self._patience = patience

    def fresh(self, resources: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
        """The resources not listed before (pages read twice, or a list that moved under us)."""
        new = []
        for resource in resources:
            if resource["id"] not in self._ids:
                self._ids.add(resource["id"])
                new.append(resource)
        self._stale = self._stale + 1 if resources and not new else 0
        if self._stale > self._patience:
            raise BadResponseError(
                f"GET {self._path}: {self._stale} pages in a row up to startIndex {start} list "
                "only resources listed before: Learnster's paging does not move on"
            )
        return new


def once(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each resource of one reply once: one listed twice is not two matches."""
    first: dict[str, dict[str, Any]] = {}
    for resource in resources:
        first.setdefault(resource["id"], resource)
    return list(first.values())
