"""Paged reads of the fake Graph: $select, $top, $expand, $filter, $orderby and $skiptoken."""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from syncd.fakes._http import Request, Response
from syncd.fakes.graph.base import _ApiError
from syncd.fakes.graph.faults import _Faults
from syncd.fakes.graph.properties import (
    _DIRECTORY_PROPERTIES,
    USER,
    USER_DEFAULT_SELECT,
    _unknown_extension,
)

if TYPE_CHECKING:
    from syncd.fakes.graph.delta import _DeltaSession

_SELECTABLE = {**_DIRECTORY_PROPERTIES, "manager": "manager", "members": "members"}
_MAX_SESSIONS = 32  # paging sessions kept for $skiptoken; the oldest is forgotten first


@dataclass
class _ListSession:
    ids: list[str]
    top: int
    epoch: int


class _Listing(_Faults):
    """Query options of collection reads and the sessions behind their $skiptoken pages."""

    page_size_max: int
    _epoch: int
    _sessions: OrderedDict[str, _DeltaSession | _ListSession]

    # ------------------------------------------------------------------ query parsing

    def _select(self, query: dict[str, str], kind: str, default: Sequence[str]) -> tuple[str, ...]:
        type_name = "microsoft.graph.user" if kind == USER else "microsoft.graph.group"
        return _select_names(query, _SELECTABLE, type_name, default)

    def _top(self, query: dict[str, str], default: int) -> int:
        raw = query.get("$top")
        if raw is None:
            return default
        try:
            top = int(raw)
        except ValueError:
            raise _ApiError(400, "BadRequest", f"Invalid value '{raw}' for $top.") from None
        if not 1 <= top <= self.page_size_max:
            raise _ApiError(
                400,
                "BadRequest",
                f"Invalid page size specified: '{top}'. Must be between 1 and "
                f"{self.page_size_max} inclusive.",
            )
        return top

    @staticmethod
    def _check_options(query: dict[str, str], allowed: set[str]) -> None:
        for key in query:
            if key.startswith("$") and key not in allowed:
                raise _ApiError(
                    400, "BadRequest", f"Query option '{key}' is not allowed on this resource."
                )

    @staticmethod
    def _expand_manager(query: dict[str, str]) -> tuple[str, ...] | None:
        raw = query.get("$expand")
        if raw is None:
            return None
        match = re.fullmatch(r"\s*manager\s*(?:\(\s*\$select\s*=\s*([^)]*)\))?\s*", raw, re.I)
        if match is None:
            raise _ApiError(
                400, "BadRequest", f"Parsing OData Select and Expand failed: '{raw}' unsupported."
            )
        if match.group(1) is None:
            return USER_DEFAULT_SELECT
        names = []
        for part in match.group(1).split(","):
            canonical = _DIRECTORY_PROPERTIES.get(part.strip().lower())
            if canonical is None:
                raise _ApiError(
                    400, "BadRequest", f"Could not find a property named '{part.strip()}'."
                )
            names.append(canonical)
        return tuple(names)

    # ------------------------------------------------------------------ sessions and links

    def _store_session(self, session: _DeltaSession | _ListSession) -> str:
        key = secrets.token_hex(12)
        self._sessions[key] = session
        while len(self._sessions) > _MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return key

    def _link(self, path: str, params: dict[str, str]) -> str:
        parts = [f"{k}={quote(v, safe=',()$=:@')}" for k, v in params.items()]
        return f"{self.base_url}/{path}" + ("?" + "&".join(parts) if parts else "")

    def _page_of(self, query: dict[str, str]) -> tuple[_ListSession | None, int]:
        raw = query.get("$skiptoken")
        if raw is None:
            return None, 0
        key, _, page = raw.rpartition(".")
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
        if not isinstance(session, _ListSession) or session.epoch != self._epoch:
            raise _ApiError(400, "BadRequest", "Invalid or expired $skiptoken.")
        try:
            return session, int(page)
        except ValueError:
            raise _ApiError(400, "BadRequest", "Invalid $skiptoken.") from None

    def _paged(
        self,
        req: Request,
        path: str,
        ids_factory: Callable[[], list[str]],
        render: Callable[[str], dict[str, Any] | None],
        context: str,
        default_top: int = 100,
    ) -> Response:
        """Serve one page of a plain (non-delta) collection with ``$top``/``$skiptoken``."""
        query = req.query
        session, page = self._page_of(query)
        if session is None:
            top = self._top(query, default_top)
            with self._lock:
                ids: list[str] = ids_factory()
                session = _ListSession(ids, top, self._epoch)
                key = self._store_session(session) if len(ids) > top else ""
        else:
            key = query["$skiptoken"].rpartition(".")[0]
        self._check_page_fault("/" + path, page + 1)
        start = page * session.top
        with self._lock:
            chunk = session.ids[start : start + session.top]
            items = [render(oid) for oid in chunk]
        payload: dict[str, Any] = {"@odata.context": context}
        if page == 0 and query.get("$count", "").lower() == "true":
            if req.headers.get("consistencylevel", "").lower() != "eventual":
                raise _ApiError(
                    400,
                    "Request_BadRequest",
                    "$count requires the ConsistencyLevel header set to eventual.",
                )
            payload["@odata.count"] = len(session.ids)
        if start + session.top < len(session.ids):
            params = {k: v for k, v in query.items() if k != "$skiptoken"}
            params["$skiptoken"] = f"{key}.{page + 1}"
            payload["@odata.nextLink"] = self._link(path, params)
        payload["value"] = [item for item in items if item is not None]
        return self._ok(req, payload)


def _select_names(
    query: dict[str, str], known: dict[str, str], type_name: str, default: Sequence[str]
) -> tuple[str, ...]:
    """The properties ``$select`` names, each once; ``known`` maps lowercase names to names."""
    raw = query.get("$select")
    if raw is None or not raw.strip():
        return tuple(default)
    names: list[str] = []
    for part in raw.split(","):
        name = part.strip()
        canonical = known.get(name.lower())
        if canonical is None:
            raise _unknown_extension(name) or _ApiError(
                400,
                "BadRequest",
                f"Could not find a property named '{name}' on type '{type_name}'.",
            )
        if canonical not in names:
            names.append(canonical)
    return tuple(names)


def _order_key(raw: str | None) -> tuple[str, bool] | None:
    if raw is None:
        return None
    match = re.fullmatch(r"\s*(displayName|userPrincipalName)(?:\s+(asc|desc))?\s*", raw, re.I)
    if match is None:
        raise _ApiError(400, "Request_UnsupportedQuery", f"Unsupported sort: '{raw}'.")
    name = "displayName" if match.group(1).lower() == "displayname" else "userPrincipalName"
    return name, (match.group(2) or "").lower() == "desc"


_STRING = r"'(?:[^']|'')*'"
_CLAUSE = re.compile(
    rf"^(?:(?P<prop>\w+)\s+(?P<op>eq|ne)\s+(?P<value>{_STRING}|true|false|null)"
    rf"|startswith\(\s*(?P<sprop>\w+)\s*,\s*(?P<svalue>{_STRING})\s*\)"
    rf"|(?P<iprop>\w+)\s+in\s+\((?P<ivalues>\s*{_STRING}(?:\s*,\s*{_STRING})*\s*)\))$",
    re.I,
)


def _literal(token: str) -> Any:
    lowered = token.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    return token[1:-1].replace("''", "'")


def _split_outside_quotes(text: str, word: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted, i = False, 0
    needle = f" {word} "
    while i < len(text):
        char = text[i]
        if char == "'":
            quoted = not quoted
        if not quoted and text[i : i + len(needle)].lower() == needle:
            parts.append("".join(current))
            current = []
            i += len(needle)
            continue
        current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


class _Filter:
    """The small part of OData ``$filter`` directory sync tools use: eq/ne/in/startswith."""

    def __init__(
        self,
        clauses: list[tuple[str, str, Any]],
        conjunction: str,
        default: Callable[[dict[str, Any], str], Any] | None = None,
    ) -> None:
        self.clauses = clauses
        self.conjunction = conjunction
        self.default = default  # the value of a property an object does not hold

    @classmethod
    def parse(
        cls,
        raw: str | None,
        known: frozenset[str],
        default: Callable[[dict[str, Any], str], Any] | None = None,
    ) -> _Filter | None:
        if raw is None or not raw.strip():
            return None
        text = raw.strip()
        conjunction = "and"
        parts = _split_outside_quotes(text, "and")
        if len(parts) == 1:
            parts = _split_outside_quotes(text, "or")
            conjunction = "or"
        elif len(_split_outside_quotes(text, "or")) > 1:
            raise _ApiError(400, "BadRequest", "Invalid filter clause: mixed and/or.")
        lookup = {p.lower(): p for p in known}
        clauses: list[tuple[str, str, Any]] = []
        for part in parts:
            match = _CLAUSE.match(part.strip())
            if match is None:
                raise _ApiError(400, "BadRequest", f"Invalid filter clause: {part.strip()}")
            if match.group("prop"):
                prop, op, value = match.group("prop"), match.group("op").lower(), match["value"]
                literal: Any = _literal(value)
            elif match.group("sprop"):
                prop, op, literal = match["sprop"], "startswith", _literal(match["svalue"])
            else:
                prop, op = match["iprop"], "in"
                literal = [_literal(v) for v in re.findall(_STRING, match["ivalues"])]
            canonical = lookup.get(prop.lower())
            if canonical is None:
                raise _unknown_extension(prop) or _ApiError(
                    400, "BadRequest", f"Property '{prop}' does not exist."
                )
            clauses.append((canonical, op, literal))
        return cls(clauses, conjunction, default)

    def upn_lookup(self) -> str | None:
        """The UPN when the filter is exactly ``userPrincipalName eq '...'`` (index lookup)."""
        if len(self.clauses) == 1:
            prop, op, value = self.clauses[0]
            if prop == "userPrincipalName" and op == "eq" and isinstance(value, str):
                return value
        return None

    def matches(self, obj: dict[str, Any]) -> bool:
        results = (self._clause(self._value(obj, c[0]), c) for c in self.clauses)
        return all(results) if self.conjunction == "and" else any(results)

    def _value(self, obj: dict[str, Any], prop: str) -> Any:
        if prop in obj or self.default is None:
            return obj.get(prop)
        return self.default(obj, prop)

    @staticmethod
    def _clause(actual: Any, clause: tuple[str, str, Any]) -> bool:
        _, op, expected = clause

        def norm(value: Any) -> Any:
            return value.lower() if isinstance(value, str) else value

        if op == "startswith":
            return isinstance(actual, str) and actual.lower().startswith(str(expected).lower())
        if op == "in":
            return norm(actual) in {norm(v) for v in expected}
        if isinstance(actual, list):  # e.g. groupTypes/any() is not supported; compare lists
            equal = norm(expected) in [norm(v) for v in actual]
        else:
            equal = norm(actual) == norm(expected)
        return equal if op == "eq" else not equal
