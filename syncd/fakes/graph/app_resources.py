"""Reads of the fake Graph's service principals and the app role assignments granted for them."""

from __future__ import annotations

import re
import uuid
from typing import Any

from syncd.fakes._http import Request, Response
from syncd.fakes.graph.apps import ASSIGNMENT_PROPERTIES, SERVICE_PRINCIPAL_PROPERTIES, _Apps
from syncd.fakes.graph.base import _ApiError
from syncd.fakes.graph.listing import _Filter, _Listing, _select_names

_BY_APP_ID = re.compile(r"servicePrincipals\(appId='([^']*)'\)")
_SP_NAMES = {p.lower(): p for p in SERVICE_PRINCIPAL_PROPERTIES}
_ASSIGNMENT_NAMES = {p.lower(): p for p in ASSIGNMENT_PROPERTIES}


def _not_found(key: str) -> _ApiError:
    return _ApiError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property objects are "
        "not present.",
    )


def _project(body: dict[str, Any] | None, select: tuple[str, ...]) -> dict[str, Any] | None:
    return None if body is None else {k: body[k] for k in select}


class _AppResources(_Listing, _Apps):
    """/servicePrincipals, by id or ``(appId='...')``, and their appRoleAssignedTo."""

    def _service_principals_route(self, req: Request, api: list[str]) -> Response:
        by_app_id = _BY_APP_ID.fullmatch(api[0])
        if by_app_id is None and len(api) == 1:
            return self._list_service_principals(req)
        if by_app_id is not None:
            sp_id, rest = self._sp_by_app_id(by_app_id.group(1)), api[1:]
        else:
            sp_id, rest = self._sp_by_id(api[1]), api[2:]
        if not rest:
            self._check_options(req.query, {"$select"})
            select = _select_names(req.query, _SP_NAMES, "microsoft.graph.servicePrincipal", ())
            with self._lock:
                body = self._render_sp(sp_id, select or SERVICE_PRINCIPAL_PROPERTIES)
            context = f"{self.base_url}/$metadata#servicePrincipals/$entity"
            return self._ok(req, {"@odata.context": context, **(body or {})})
        if rest[0] == "appRoleAssignedTo" and len(rest) <= 2:
            path = "/".join(api[: len(api) - len(rest) + 1])
            return self._assignments_route(req, sp_id, path, rest[1:])
        raise _ApiError(400, "BadRequest", f"Resource not found for the segment '{rest[0]}'.")

    def _sp_by_id(self, key: str) -> str:
        try:
            sp_id = str(uuid.UUID(key))
        except ValueError:
            raise _ApiError(
                400, "Request_BadRequest", f"Invalid object identifier '{key}'."
            ) from None
        with self._lock:
            if sp_id not in self._service_principals:
                raise _not_found(key)
        return sp_id

    def _sp_by_app_id(self, app_id: str) -> str:
        with self._lock:
            sp_id = self._app_ids.get(app_id.lower())
        if sp_id is None:
            raise _not_found(f"appId={app_id}")
        return sp_id

    def _render_sp(self, sp_id: str, select: tuple[str, ...]) -> dict[str, Any] | None:
        sp = self._service_principals.get(sp_id)
        return None if sp is None else {k: sp[k] for k in select}

    def _list_service_principals(self, req: Request) -> Response:
        query = req.query
        self._check_options(query, {"$select", "$top", "$filter", "$count", "$skiptoken"})
        select = _select_names(
            query, _SP_NAMES, "microsoft.graph.servicePrincipal", SERVICE_PRINCIPAL_PROPERTIES
        )
        matcher = _Filter.parse(query.get("$filter"), frozenset(SERVICE_PRINCIPAL_PROPERTIES))

        def ids() -> list[str]:
            found = self._service_principals
            return [s for s, sp in found.items() if matcher is None or matcher.matches(sp)]

        context = f"{self.base_url}/$metadata#servicePrincipals"
        if "$select" in query:
            context += f"({','.join(select)})"
        return self._paged(
            req, "servicePrincipals", ids, lambda s: self._render_sp(s, select), context
        )

    def _assignments_route(self, req: Request, sp_id: str, path: str, rest: list[str]) -> Response:
        query = req.query
        allowed = {"$select"} if rest else {"$select", "$top", "$count", "$skiptoken", "$filter"}
        self._check_options(query, allowed)
        if "$filter" in query:
            raise _ApiError(400, "Request_UnsupportedQuery", "Unsupported query.")
        select = _select_names(
            query, _ASSIGNMENT_NAMES, "microsoft.graph.appRoleAssignment", ASSIGNMENT_PROPERTIES
        )
        context = f"{self.base_url}/$metadata#servicePrincipals('{sp_id}')/appRoleAssignedTo"
        if rest:
            with self._lock:  # an assignment whose principal is in the recycle bin is not listed
                body = _project(self._render_assignment(sp_id, rest[0]), select)
            if body is None:
                raise _not_found(rest[0])
            return self._ok(req, {"@odata.context": f"{context}/$entity", **body})
        return self._paged(
            req,
            path,
            lambda: self._listed(sp_id),
            lambda aid: _project(self._render_assignment(sp_id, aid), select),
            context,
        )
