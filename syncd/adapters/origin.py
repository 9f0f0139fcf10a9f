"""Where syncd may send a request: the origin of a configured base URL, and URLs fit to show.

Graph's answers carry the URLs of the next page and of the next delta round. They are data from
outside: a tampered or misrouted answer could point anywhere, and following it would hand
Graph's token to that host and take its answers for Graph's (docs/ARCHITECTURE.md, "Links stay
home"). URLs are parsed with httpx, the parser the request itself will be built with.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

_DEFAULT_PORTS = {"https": 443, "http": 80}


def shown(url: str | httpx.URL) -> str:
    """``url`` fit for a log line or an error: scheme, host, port and path; never the query
    (skip and delta tokens), the fragment or user info."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):  # ValueError: a lone surrogate
        return "a malformed URL"
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


def host_of(url: str | httpx.URL) -> str:
    """Host and port of ``url`` (for a message about a link syncd refused)."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):  # ValueError: a lone surrogate
        return "a malformed URL"
    port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme)
    return f"{parsed.host}:{port}" if parsed.host else "no host"


def redirect_target(location: str) -> str:
    """Where a refused redirect pointed, for its message: its host and port, never the URL."""
    return f"to {host_of(location)}" if location else "without a Location"


@dataclass(frozen=True)
class Origin:
    """Scheme, host, port and path prefix of a base URL; the URLs that stay inside it."""

    scheme: str
    host: str
    port: int | None
    prefix: str  # the base path with a trailing "/", e.g. "/v1.0/"

    @classmethod
    def of(cls, base_url: str) -> Origin:
        parsed = httpx.URL(base_url)
        scheme = parsed.scheme.lower()
        port = parsed.port or _DEFAULT_PORTS.get(scheme)
        return cls(scheme, parsed.host.lower(), port, parsed.path.rstrip("/") + "/")

    def refusal(self, url: str) -> str | None:
        """Why ``url`` leaves this origin (naming its host, never its query), or None."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError):  # ValueError: a lone surrogate
            return "it is not a valid URL"
        scheme = parsed.scheme.lower()
        if parsed.userinfo:
            return f"it carries user information (host {host_of(parsed)})"
        if (
            scheme != self.scheme
            or parsed.host.lower() != self.host
            or (parsed.port or _DEFAULT_PORTS.get(scheme)) != self.port
        ):
            return f"it points at {scheme or 'no scheme'}://{host_of(parsed)}"
        if not parsed.path.casefold().startswith(self.prefix.casefold()):
            return f"its path {parsed.path!r} is outside {self.prefix!r}"
        return None
