"""Reads of the fake Graph's users, groups, members, managers, reports and organization."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from syncd.fakes._http import Request, Response
from syncd.fakes.graph.base import _DELTA_SEGMENTS, _ApiError
from syncd.fakes.graph.delta import _Delta
from syncd.fakes.graph.listing import _Filter, _order_key
from syncd.fakes.graph.properties import (
    GROUP,
    GROUP_DEFAULT_SELECT,
    GROUP_PROPERTIES,
    USER,
    USER_DEFAULT_SELECT,
    USER_PROPERTIES,
    _user_body,
    _user_default,
)


class _Resources(_Delta):
    """The /users, /groups and /organization resources and their relations."""

    # ------------------------------------------------------------------ users

    def _find_user(self, key: str) -> dict[str, Any]:
        user = self._users.get(key)
        if user is None:
            uid = self._upn.get(key.lower())
            user = self._users.get(uid) if uid else None
        if user is None:
            raise _ApiError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{key}' does not exist or one of its queried reference-property "
                "objects are not present.",
            )
        return user

    def _users_route(self, req: Request, rest: list[str]) -> Response:
        query = req.query
        if not rest:
            return self._list_users(req)
        if rest[0] in _DELTA_SEGMENTS and len(rest) == 1:
            return self._delta(req, "users")
        with self._lock:
            user = self._find_user(rest[0])
            uid = user["id"]
        if len(rest) == 1:
            self._check_options(query, {"$select", "$expand"})
            select = self._select(query, USER, USER_DEFAULT_SELECT)
            expand = self._expand_manager(query)
            with self._lock:
                body = self._render_user(uid, select, expand)
            assert body is not None
            body = {"@odata.context": f"{self.base_url}/$metadata#users/$entity", **body}
            return self._ok(req, body)
        if rest[1:] == ["manager"]:
            self._check_options(query, {"$select"})
            select = self._select(query, USER, USER_DEFAULT_SELECT)
            with self._lock:
                manager = self._effective_manager(uid)
                body = self._render_user(manager, select) if manager else None
            if body is None:
                raise _ApiError(
                    404,
                    "Request_ResourceNotFound",
                    "Resource 'manager' does not exist or one of its queried reference-property "
                    "objects are not present.",
                )
            return self._ok(
                req,
                {
                    "@odata.context": f"{self.base_url}/$metadata#directoryObjects/$entity",
                    "@odata.type": USER,
                    **body,
                },
            )
        if rest[1:] == ["directReports"]:
            return self._directory_page(
                req,
                f"users/{uid}/directReports",
                lambda: [r for r, m in self._manager_of.items() if m == uid and r in self._users],
            )
        if rest[1:] in (["memberOf"], ["transitiveMemberOf"]):
            transitive = rest[1] == "transitiveMemberOf"
            return self._directory_page(
                req, f"users/{uid}/{rest[1]}", lambda: self._groups_of(uid, transitive)
            )
        raise _ApiError(400, "BadRequest", f"Resource not found for the segment '{rest[1]}'.")

    def _render_user(
        self, uid: str, select: tuple[str, ...], expand: tuple[str, ...] | None = None
    ) -> dict[str, Any] | None:
        user = self._users.get(uid)
        if user is None:
            return None
        body = _user_body(user, select)
        if expand is not None:
            manager = self._effective_manager(uid)
            if manager is not None:
                body["manager"] = {"@odata.type": USER, **_user_body(self._users[manager], expand)}
        return body

    def _list_users(self, req: Request) -> Response:
        query = req.query
        self._check_options(
            query, {"$select", "$top", "$filter", "$expand", "$count", "$orderby", "$skiptoken"}
        )
        select = tuple(s for s in self._select(query, USER, USER_DEFAULT_SELECT) if s != "manager")
        expand = self._expand_manager(query)
        matcher = _Filter.parse(query.get("$filter"), USER_PROPERTIES, _user_default)
        order = _order_key(query.get("$orderby"))

        def ids() -> list[str]:
            upn = matcher.upn_lookup() if matcher else None
            if upn is not None:
                found = self._upn.get(upn.lower())
                return [found] if found else []
            users = self._users
            result = [u for u, p in users.items() if matcher is None or matcher.matches(p)]
            if order is not None:
                result.sort(key=lambda u: str(users[u].get(order[0]) or "").lower())
                if order[1]:
                    result.reverse()
            return result

        context = f"{self.base_url}/$metadata#users"
        if "$select" in query:
            context += f"({','.join(select)})"
        return self._paged(
            req, "users", ids, lambda uid: self._render_user(uid, select, expand), context
        )

    # ------------------------------------------------------------------ groups

    def _groups_route(self, req: Request, rest: list[str]) -> Response:
        query = req.query
        if not rest:
            self._check_options(
                query, {"$select", "$top", "$filter", "$count", "$orderby", "$skiptoken"}
            )
            select = self._select(query, GROUP, GROUP_DEFAULT_SELECT)
            matcher = _Filter.parse(query.get("$filter"), GROUP_PROPERTIES)
            order = _order_key(query.get("$orderby"))

            def ids() -> list[str]:
                groups = self._groups
                result = [g for g, p in groups.items() if matcher is None or matcher.matches(p)]
                if order is not None:
                    result.sort(key=lambda g: str(groups[g].get(order[0]) or "").lower())
                    if order[1]:
                        result.reverse()
                return result

            return self._paged(
                req,
                "groups",
                ids,
                lambda gid: self._render_group(gid, select),
                f"{self.base_url}/$metadata#groups",
            )
        if rest[0] in _DELTA_SEGMENTS and len(rest) == 1:
            return self._delta(req, "groups")
        gid = rest[0]
        with self._lock:
            if gid not in self._groups:
                raise _ApiError(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{gid}' does not exist or one of its queried reference-property "
                    "objects are not present.",
                )
        if len(rest) == 1:
            self._check_options(query, {"$select"})
            select = self._select(query, GROUP, GROUP_DEFAULT_SELECT)
            with self._lock:
                body = self._render_group(gid, select)
            return self._ok(
                req, {"@odata.context": f"{self.base_url}/$metadata#groups/$entity", **(body or {})}
            )
        relation = rest[1]
        cast = rest[2] if len(rest) == 3 else None
        if relation in ("members", "transitiveMembers") and len(rest) <= 3:
            if cast is not None and cast not in (
                "microsoft.graph.user",
                "microsoft.graph.group",
                "microsoft.graph.device",
                "microsoft.graph.orgContact",
            ):
                raise _ApiError(400, "BadRequest", f"Unknown type cast '{cast}'.")
            wanted = f"#{cast}" if cast else None

            def member_ids() -> list[str]:
                found = (
                    self._transitive_members(gid)
                    if relation == "transitiveMembers"
                    else self._live_members(gid)
                )
                return [m for m in found if wanted is None or self._kind.get(m) == wanted]

            path = f"groups/{gid}/{relation}" + (f"/{cast}" if cast else "")
            return self._directory_page(req, path, member_ids)
        raise _ApiError(400, "BadRequest", f"Resource not found for the segment '{relation}'.")

    def _render_group(self, gid: str, select: Sequence[str]) -> dict[str, Any] | None:
        group = self._groups.get(gid)
        if group is None:
            return None
        return {k: group.get(k) for k in select}

    def _render_directory_object(
        self, oid: str, select: tuple[str, ...] | None
    ) -> dict[str, Any] | None:
        kind = self._kind.get(oid)
        if kind == USER:
            body = self._render_user(oid, select or USER_DEFAULT_SELECT)
        elif kind == GROUP:
            body = self._render_group(oid, select or GROUP_DEFAULT_SELECT)
        else:
            obj = self._others.get(oid)
            body = None if obj is None else {k: obj[k] for k in (select or obj) if k in obj}
        if body is None:
            return None
        return {"@odata.type": kind, **body}

    def _directory_page(self, req: Request, path: str, ids: Callable[[], list[str]]) -> Response:
        query = req.query
        self._check_options(query, {"$select", "$top", "$count", "$skiptoken", "$filter"})
        if "$filter" in query:
            raise _ApiError(400, "Request_UnsupportedQuery", "Unsupported query.")
        select = self._select(query, USER, ()) or None
        return self._paged(
            req,
            path,
            ids,
            lambda oid: self._render_directory_object(oid, select),
            f"{self.base_url}/$metadata#directoryObjects",
        )

    def _transitive_members(self, gid: str) -> list[str]:
        seen: dict[str, None] = {}
        stack = [gid]
        visited = {gid}
        while stack:
            current = stack.pop(0)
            for member in self._members.get(current, {}):
                if not self._live(member) or member in seen or member == gid:
                    continue
                seen[member] = None
                if self._kind.get(member) == GROUP and member not in visited:
                    visited.add(member)
                    stack.append(member)
        return list(seen)

    def _groups_of(self, oid: str, transitive: bool) -> list[str]:
        found: dict[str, None] = {}
        frontier = [oid]
        while frontier:
            current = frontier.pop(0)
            for gid in sorted(self._member_of.get(current, ())):
                if gid in self._groups and gid not in found and gid != oid:
                    found[gid] = None
                    if transitive:
                        frontier.append(gid)
        return list(found)

    def _organization(self) -> dict[str, Any]:
        return {
            "@odata.context": f"{self.base_url}/$metadata#organization",
            "value": [
                {
                    "id": self.tenant_guid,
                    "displayName": "Contoso (fake)",
                    "tenantType": "AAD",
                    "countryLetterCode": "SE",
                    "preferredLanguage": "en",
                    "verifiedDomains": [
                        {
                            "capabilities": "Email, OfficeCommunicationsOnline",
                            "isDefault": True,
                            "isInitial": True,
                            "name": self.tenant_id,
                            "type": "Managed",
                        }
                    ],
                }
            ],
        }
