"""Fault injection of the fake Graph: random 429 and 503 answers, failing pages, empty pages."""

from __future__ import annotations

from dataclasses import dataclass
from random import Random
from typing import Any

from syncd.fakes.graph.base import _DELTA_SEGMENTS, _ApiError, _GraphBase


@dataclass
class _PageFault:
    prefix: str
    page: int
    status: int
    times: int | None
    code: str = ""


@dataclass
class _LinkFault:
    kind: str  # users | groups
    page: int
    link: str  # next | delta | loop
    origin: str
    times: int | None


def _normalise_api_path(path: str) -> str:
    """``users/microsoft.graph.delta()`` -> ``users/delta``, for fault matching."""
    parts = path.split("/")
    return "/".join("delta" if p in _DELTA_SEGMENTS else p for p in parts)


class _Faults(_GraphBase):
    """Rate faults on every API request and failures of chosen pages of paged reads."""

    fault_rate_429: float
    fault_rate_503: float
    retry_after_seconds: int
    empty_pages: bool
    _fault_rng: Random
    _page_faults: list[_PageFault]
    _link_faults: list[_LinkFault]

    def fail_page(
        self,
        path_prefix: str,
        page_number: int,
        status: int = 500,
        *,
        times: int | None = 1,
        code: str = "",
    ) -> None:
        """Make page ``page_number`` (1-based) of a paged read under ``path_prefix`` fail.

        ``path_prefix`` is relative to /v1.0, e.g. ``/users/delta`` (any delta spelling) or
        ``/users``; ``times=None`` fails it every time, else that many times. ``code``: the
        error code of Graph's envelope (default: one Graph uses for that status).
        """
        with self._lock:
            prefix = "/" + _normalise_api_path(path_prefix.strip("/").removeprefix("v1.0/"))
            self._page_faults.append(_PageFault(prefix, page_number, status, times, code))

    def tamper_links(
        self, kind: str, link: str, origin: str = "", *, page: int = 1, times: int | None = 1
    ) -> None:
        """Make page ``page`` (1-based) of ``kind``/delta answer like a tampered proxy.

        ``link``: "next" or "delta" moves that page's ``@odata.nextLink`` or
        ``@odata.deltaLink`` to ``origin`` (e.g. ``http://127.0.0.2:8080``), same path and
        query; "loop" makes the page's nextLink lead to the page itself. ``times=None``: always.
        """
        if link not in ("next", "delta", "loop"):
            raise ValueError(f"link {link!r}: next, delta or loop")
        with self._lock:
            self._link_faults.append(_LinkFault(kind, page, link, origin.rstrip("/"), times))

    def clear_faults(self) -> None:
        """Remove rate faults, page faults, tampered links and empty pages."""
        with self._lock:
            self.fault_rate_429 = self.fault_rate_503 = 0.0
            self.empty_pages = False
            self._page_faults.clear()
            self._link_faults.clear()

    def _tamper(self, kind: str, page: int, payload: dict[str, Any], here: str) -> None:
        """Apply a tampered-link fault to page ``page`` (1-based); ``here``: its own link."""
        with self._lock:
            for fault in self._link_faults:
                if fault.kind != kind or fault.page != page or fault.times == 0:
                    continue
                key = "@odata.deltaLink" if fault.link == "delta" else "@odata.nextLink"
                if fault.link != "loop" and key not in payload:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                break
            else:
                return
        if fault.link == "loop":
            payload.pop("@odata.deltaLink", None)
            payload["@odata.nextLink"] = here
        else:
            payload[key] = fault.origin + payload[key].removeprefix(self.origin)

    def _inject_rate_faults(self) -> None:
        with self._lock:
            roll = self._fault_rng.random()
        retry = {"Retry-After": str(self.retry_after_seconds)}
        if roll < self.fault_rate_429:
            raise _ApiError(
                429,
                "TooManyRequests",
                "Too many requests are being sent. Retry after the time in Retry-After.",
                retry,
            )
        if roll < self.fault_rate_429 + self.fault_rate_503:
            raise _ApiError(
                503,
                "serviceNotAvailable",
                "The service is temporarily unavailable. Retry after a while.",
                retry,
            )

    def _check_page_fault(self, path: str, page: int) -> None:
        """Raise the configured failure for page ``page`` (1-based) of ``path``."""
        with self._lock:
            for fault in self._page_faults:
                if fault.page != page or not path.startswith(fault.prefix):
                    continue
                if fault.times is not None:
                    if fault.times <= 0:
                        continue
                    fault.times -= 1
                status, code = fault.status, fault.code
                break
            else:
                return
        codes = {429: "TooManyRequests", 503: "serviceNotAvailable", 504: "GatewayTimeout"}
        headers = {"Retry-After": str(self.retry_after_seconds)} if status in (429, 503) else {}
        raise _ApiError(
            status,
            code or codes.get(status, "generalException"),
            f"Injected failure of page {page}.",
            headers,
        )
