"""Delta queries of the fake Graph: rounds, their pages and tokens, manager@delta, members@delta."""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from typing import Any

from syncd.fakes._http import Request, Response
from syncd.fakes.graph.base import _ApiError, _b64, _unb64
from syncd.fakes.graph.directory import _Directory
from syncd.fakes.graph.listing import _Listing
from syncd.fakes.graph.properties import (
    GROUP,
    GROUP_DEFAULT_SELECT,
    USER,
    USER_DEFAULT_SELECT,
    _user_body,
)


@dataclass
class _Entry:
    """One item of a delta round, decided when the round starts; values are read per page."""

    id: str
    mode: str  # "full", "partial" or "removed"
    props: tuple[str, ...] = ()
    reason: str = "deleted"
    manager: list[dict[str, Any]] | None = None
    members: list[dict[str, Any]] | None = None


@dataclass
class _DeltaSession:
    kind: str  # "users" or "groups"
    upto: int
    select: tuple[str, ...]
    with_relation: bool  # manager (users) or members (groups) selected
    entries: list[_Entry]
    pages: list[tuple[int, int]]
    epoch: int
    page_size: int


class _Delta(_Listing, _Directory):
    """Delta rounds over the change log; a delta token says where the last round ended."""

    delta_page_size: int
    members_per_page: int
    _nonce: str

    def expire_delta_tokens(self) -> None:
        """Every outstanding delta token and delta/list skiptoken now answers 410 (or 400)."""
        with self._lock:
            self._epoch += 1
            self._sessions.clear()

    # ------------------------------------------------------------------ delta

    def _encode_delta_token(self, session: _DeltaSession) -> str:
        data = [
            1,
            self._nonce,
            session.epoch,
            session.kind,
            session.upto,
            list(session.select),
            session.with_relation,
            session.page_size,
        ]
        return _b64(json.dumps(data, separators=(",", ":")).encode())

    def _gone(self) -> _ApiError:
        return _ApiError(
            410,
            "syncStateNotFound",
            "The delta token has expired or is unknown (resyncRequired): start a new round of "
            "change tracking without a token.",
        )

    def _decode_delta_token(self, token: str, kind: str) -> tuple[int, tuple[str, ...], bool, int]:
        try:
            data = json.loads(_unb64(token))
            version, nonce, epoch, token_kind, upto, select, relation, page_size = data
        except (ValueError, TypeError):
            raise self._gone() from None
        if (
            version != 1
            or nonce != self._nonce
            or epoch != self._epoch
            or token_kind != kind
            or not isinstance(upto, int)
            or upto > self._seq
        ):
            raise self._gone()
        return upto, tuple(select), bool(relation), int(page_size)

    def _delta(self, req: Request, kind: str) -> Response:
        query = req.query
        self._check_options(
            query, {"$select", "$expand", "$top", "$deltatoken", "$skiptoken", "$filter"}
        )
        if "$filter" in query:
            raise _ApiError(
                400, "Request_UnsupportedQuery", "The fake supports no $filter on delta."
            )
        if "$skiptoken" in query:
            key, _, page_text = query["$skiptoken"].rpartition(".")
            with self._lock:
                session = self._sessions.get(key)
                if session is not None:
                    self._sessions.move_to_end(key)
            if (
                not isinstance(session, _DeltaSession)
                or session.kind != kind
                or session.epoch != self._epoch
                or not page_text.isdigit()
                or int(page_text) >= len(session.pages)
            ):
                raise self._gone()
            page = int(page_text)
        else:
            since: int | None = None
            if "$deltatoken" in query:
                since, select, relation, page_size = self._decode_delta_token(
                    query["$deltatoken"], kind
                )
                if "odata.maxpagesize" in req.headers.get("prefer", ""):
                    page_size = self._delta_page_size(req)
            else:
                relation_name = "manager" if kind == "users" else "members"
                default = USER_DEFAULT_SELECT if kind == "users" else GROUP_DEFAULT_SELECT
                select = self._select(query, USER if kind == "users" else GROUP, default)
                expand = query.get("$expand", "").strip().lower()
                if expand and not expand.startswith(relation_name):
                    raise _ApiError(400, "BadRequest", f"$expand={expand} is not supported.")
                # without $select, groups/delta still sends members@delta; users/delta sends
                # the manager only when asked for
                default_relation = kind == "groups" and "$select" not in query
                relation = relation_name in select or bool(expand) or default_relation
                select = tuple(s for s in select if s not in ("manager", "members"))
                page_size = self._delta_page_size(req)
            with self._lock:
                session = self._new_delta_session(kind, since, select, relation, page_size)
                key = self._store_session(session)
            page = 0
        self._check_page_fault(f"/{kind}/delta", page + 1)
        start, end = session.pages[page]
        with self._lock:
            items = [self._render_entry(kind, e, session) for e in session.entries[start:end]]
        context = f"{self.base_url}/$metadata#{kind}({','.join(session.select)})"
        payload: dict[str, Any] = {"@odata.context": context}
        if page + 1 < len(session.pages):
            payload["@odata.nextLink"] = f"{self.base_url}/{kind}/delta?$skiptoken={key}.{page + 1}"
        else:
            token = self._encode_delta_token(session)
            payload["@odata.deltaLink"] = f"{self.base_url}/{kind}/delta?$deltatoken={token}"
        payload["value"] = items
        self._tamper(
            kind, page + 1, payload, f"{self.base_url}/{kind}/delta?$skiptoken={key}.{page}"
        )
        return self._ok(req, payload)

    def _delta_page_size(self, req: Request) -> int:
        size = self.delta_page_size
        match = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", req.headers.get("prefer", ""))
        if match:
            size = int(match.group(1))
        if "$top" in req.query:
            size = self._top(req.query, size)
        return max(1, min(size, self.page_size_max))

    def _new_delta_session(
        self,
        kind: str,
        since: int | None,
        select: tuple[str, ...],
        relation: bool,
        page_size: int,
    ) -> _DeltaSession:
        if kind == "users":
            entries = self._user_entries(since, select, relation)
        else:
            entries = self._group_entries(since, select, relation)
        pages: list[tuple[int, int]] = []
        start, count, refs = 0, 0, 0
        for index, entry in enumerate(entries):
            weight = len(entry.members) if entry.members else 0
            if count and (count >= page_size or refs + weight > self.members_per_page):
                pages.append((start, index))
                start, count, refs = index, 0, 0
            count += 1
            refs += weight
        pages.append((start, len(entries)))
        if self.empty_pages:
            # Graph may send an empty page that still has a nextLink; clients must go on
            pages.insert(0, (0, 0))
            if len(pages) > 2:
                middle = len(pages) // 2
                pages.insert(middle, (pages[middle][0], pages[middle][0]))
        return _DeltaSession(
            kind, self._seq, select, relation, entries, pages, self._epoch, page_size
        )

    def _changed_ids(self, log: tuple[list[int], list[str]], since: int) -> list[str]:
        start = bisect.bisect_right(log[0], since)
        return list(dict.fromkeys(log[1][start:]))

    def _manager_delta(self, uid: str) -> list[dict[str, Any]] | None:
        manager = self._effective_manager(uid)
        if manager is not None:
            return [{"@odata.type": USER, "id": manager}]
        old = self._utrack(uid).old_manager
        if old is not None:
            return [{"@odata.type": USER, "id": old, "@removed": {"reason": "deleted"}}]
        return None

    def _user_entries(
        self, since: int | None, select: tuple[str, ...], relation: bool
    ) -> list[_Entry]:
        if since is None:
            return [
                _Entry(uid, "full", manager=self._manager_full(uid) if relation else None)
                for uid in self._users
            ]
        entries: list[_Entry] = []
        for uid in self._changed_ids(self._user_log, since):
            track = self._utrack(uid)
            if uid not in self._users:
                if track.removed > since:
                    entries.append(_Entry(uid, "removed", reason=track.reason or "deleted"))
                continue
            if track.created > since:
                entries.append(
                    _Entry(uid, "full", manager=self._manager_full(uid) if relation else None)
                )
                continue
            props = tuple(p for p in select if track.props.get(p, 0) > since)
            manager = self._manager_delta(uid) if relation and track.manager > since else None
            if props or manager:
                entries.append(_Entry(uid, "partial", props=props, manager=manager))
        return entries

    def _manager_full(self, uid: str) -> list[dict[str, Any]] | None:
        manager = self._effective_manager(uid)
        return [{"@odata.type": USER, "id": manager}] if manager else None

    def _member_refs(self, gid: str, since: int | None) -> list[dict[str, Any]]:
        if since is None:
            return [{"@odata.type": self._kind[m], "id": m} for m in self._live_members(gid)]
        current = self._members.get(gid, {})
        refs = []
        for member, seq in self._gtrack(gid).members.items():
            if seq <= since:
                continue
            ref: dict[str, Any] = {"@odata.type": self._kind.get(member, USER), "id": member}
            if member not in current or not self._live(member):
                ref["@removed"] = {"reason": "deleted"}
            refs.append(ref)
        return refs

    def _group_entries(
        self, since: int | None, select: tuple[str, ...], relation: bool
    ) -> list[_Entry]:
        chunk = max(1, self.members_per_page)
        entries: list[_Entry] = []

        def add(gid: str, mode: str, props: tuple[str, ...], refs: list[dict[str, Any]]) -> None:
            if not relation:
                entries.append(_Entry(gid, mode, props=props))
                return
            # a big group is repeated, each copy carrying the next slice of members@delta
            if not refs and mode == "partial":
                entries.append(_Entry(gid, mode, props=props))
                return
            for offset in range(0, max(len(refs), 1), chunk):
                piece = refs[offset : offset + chunk]
                entries.append(_Entry(gid, mode, props=props, members=piece))

        if since is None:
            for gid in self._groups:
                add(gid, "full", (), self._member_refs(gid, None))
            return entries
        for gid in self._changed_ids(self._group_log, since):
            track = self._gtrack(gid)
            if gid not in self._groups:
                if track.removed > since:
                    entries.append(_Entry(gid, "removed", reason=track.reason or "deleted"))
                continue
            if track.created > since:
                add(gid, "full", (), self._member_refs(gid, None))
                continue
            props = tuple(p for p in select if track.props.get(p, 0) > since)
            refs = self._member_refs(gid, since) if relation else []
            if props or refs:
                add(gid, "partial", props, refs)
        return entries

    def _render_entry(self, kind: str, entry: _Entry, session: _DeltaSession) -> dict[str, Any]:
        store = self._users if kind == "users" else self._groups
        obj = store.get(entry.id)
        if entry.mode == "removed" or obj is None:
            reason = entry.reason
            if obj is None and entry.mode != "removed":
                track = self._utrack(entry.id) if kind == "users" else self._gtrack(entry.id)
                reason = track.reason or "deleted"
            return {"id": entry.id, "@removed": {"reason": reason}}
        full = entry.mode == "full"
        names = session.select if full else entry.props
        if kind == "users":  # a change to an extension without value says so with a null
            body = _user_body(obj, names, keep_null=not full)
        else:
            body = {k: obj.get(k) for k in names}
        body["id"] = entry.id
        if entry.manager is not None:
            body["manager@delta"] = entry.manager
        if entry.members is not None:
            body["members@delta"] = entry.members
        return body
