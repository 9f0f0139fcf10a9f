"""The fake Learnster's /Users and /Groups endpoints: lists, searches, reads and writes."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from syncd.fakes._http import Request, Response
from syncd.fakes.learnster.patch import _Patching
from syncd.fakes.learnster.projection import _ListParams, _Projection, _split_names
from syncd.fakes.learnster.schema import DEFAULT_COUNT, LIST_SCHEMA, SEARCH_SCHEMA, USER, Resource
from syncd.fakes.learnster.store import _Kind, _Store
from syncd.fakes.learnster.values import ScimFault, _invalid, _lower_keys
from syncd.fakes.scim_filter import And, Compare, Expr, FilterError, matches, parse_filter, resolve


class _Endpoints(_Store, _Patching):
    """Lists and searches (RFC 7644 §3.4), GET, POST, PUT, PATCH and DELETE of one resource."""

    _rejections: dict[str, ScimFault]
    patch_returns_204: bool
    patch_honours_projection: bool

    # ---------------------------------------------------------------- reads

    def _query_params(self, query: dict[str, str]) -> _ListParams:
        def number(name: str, default: int) -> int:
            raw = query.get(name, "")
            if raw == "":
                return default
            try:
                return int(raw)
            except ValueError:
                raise _invalid(f"{name} must be an integer, got {raw!r}") from None

        return _ListParams(
            query.get("filter") or None,
            number("startIndex", 1),
            number("count", DEFAULT_COUNT),
            _split_names(query.get("attributes")),
            _split_names(query.get("excludedAttributes")),
        )

    def _search_params(self, body: Any) -> _ListParams:
        # RFC 7644 §3.4.3: the same parameters as a GET, in a SearchRequest body.
        if not isinstance(body, dict):
            raise ScimFault(400, "a SearchRequest object is required", "invalidSyntax")
        low = _lower_keys(body)
        if SEARCH_SCHEMA.lower() not in [str(s).lower() for s in low.get("schemas") or []]:
            raise ScimFault(400, f"schemas must contain {SEARCH_SCHEMA}", "invalidSyntax")

        def number(name: str, default: int) -> int:
            value = low.get(name.lower(), default)
            if value is None:
                return default
            if not isinstance(value, int) or isinstance(value, bool):
                raise _invalid(f"{name} must be an integer")
            return value

        def names(name: str) -> list[str]:
            value = low.get(name.lower()) or []
            if isinstance(value, str):
                return _split_names(value)
            return [str(v) for v in value]

        flt = low.get("filter")
        return _ListParams(
            str(flt) if flt else None,
            number("startIndex", 1),
            number("count", DEFAULT_COUNT),
            names("attributes"),
            names("excludedAttributes"),
        )

    def _list(self, kinds: list[_Kind], params: _ListParams) -> Response:
        start = max(1, params.start_index)  # RFC 7644 §3.4.2.4: < 1 is read as 1
        count = min(max(0, params.count), self.page_size_max)
        plans: list[tuple[_Kind, Expr | None, _Projection | None]] = []
        problems: list[str] = []
        for kind in kinds:
            try:
                expr = self._compile(kind, params.filter) if params.filter else None
            except FilterError as exc:
                problems.append(str(exc))
                continue
            projection = _Projection.build(kind.schema, params.attributes, params.excluded)
            plans.append((kind, expr, projection))
        if not plans:
            raise ScimFault(400, f"invalid filter: {problems[0]}", "invalidFilter")
        with self._lock:
            total = 0
            page: list[Any] = []
            skip = start - 1
            for kind, expr, projection in plans:
                hits, size = self._select(kind, expr)
                total += size
                if len(page) >= count:
                    continue
                if skip >= size:
                    skip -= size
                    continue
                for resource in islice(hits, skip, skip + count - len(page)):
                    page.append(projection.apply(resource) if projection else resource)
                skip = 0
            payload = {
                "schemas": [LIST_SCHEMA],
                "totalResults": total,
                "itemsPerPage": len(page),
                "startIndex": start,
                "Resources": page,
            }
            return self._json(payload)

    def _compile(self, kind: _Kind, text: str) -> Expr:
        return resolve(parse_filter(text), kind.schema.resolver)

    def _select(self, kind: _Kind, expr: Expr | None) -> tuple[Iterator[Resource], int]:
        """Matching resources in creation order, and how many there are (under the lock)."""
        if expr is None:
            return iter(kind.items.values()), len(kind.items)
        candidates = self._indexed(kind, expr)
        if candidates is None:
            found = [r for r in kind.items.values() if matches(expr, r)]
        else:
            ordered = sorted(candidates, key=kind.seq.__getitem__)
            found = [kind.items[i] for i in ordered if matches(expr, kind.items[i])]
        return iter(found), len(found)

    def _indexed(self, kind: _Kind, expr: Expr) -> set[str] | None:
        """Candidate ids from an index when the filter pins an indexed attribute, else None."""
        if isinstance(expr, And):
            left = self._indexed(kind, expr.left)
            return left if left is not None else self._indexed(kind, expr.right)
        if not (isinstance(expr, Compare) and expr.op == "eq" and isinstance(expr.value, str)):
            return None
        path = expr.path
        if path.urn is not None or path.sub is not None:
            return None
        if path.name == "id":
            return {expr.value} if expr.value in kind.items else set()
        if path.name == "externalId":
            return set(kind.by_external.get(expr.value, ()))
        if path.name == ("userName" if kind.schema is USER else "displayName"):
            hit = kind.by_name.get(expr.value.lower())
            return {hit} if hit is not None else set()
        return None

    def _get(self, kind: _Kind, rid: str, request: Request) -> Response:
        params = self._query_params(request.query)
        projection = _Projection.build(kind.schema, params.attributes, params.excluded)
        with self._lock:
            resource = self._find(kind, rid)
            # RFC 7644 §3.14: a GET whose If-None-Match holds the current version gets a 304.
            wanted = request.headers.get("if-none-match")
            if wanted and resource["meta"]["version"] in wanted:
                return Response(304, b"", {"ETag": resource["meta"]["version"]})
            return self._resource_response(resource, 200, projection)

    # ---------------------------------------------------------------- writes

    def _check_rejected(self, *user_names: Any) -> None:
        for name in user_names:
            if isinstance(name, str) and name.lower() in self._rejections:
                raise self._rejections[name.lower()]

    def _post(self, kind: _Kind, body: Any) -> Response:
        with self._lock:
            if kind is self._users and isinstance(body, dict):
                self._check_rejected(_lower_keys(body).get("username"))
            resource = self._create(kind, body, require_schemas=True)
            return self._resource_response(resource, 201)

    def _put(self, kind: _Kind, rid: str, body: Any, request: Request) -> Response:
        # RFC 7644 §3.5.1: replace every writable attribute with the request's.
        with self._lock:
            old = self._find(kind, rid)
            self._check_etag(old, request)
            if kind is self._users:
                new_name = _lower_keys(body).get("username") if isinstance(body, dict) else None
                self._check_rejected(old.get("userName"), new_name)
            candidate = self._normalize(kind, body, require_schemas=True)
            resource = self._update(kind, rid, old, candidate)
            return self._resource_response(resource)

    def _patch(self, kind: _Kind, rid: str, body: Any, request: Request) -> Response:
        with self._lock:
            old = self._find(kind, rid)
            self._check_etag(old, request)
            if kind is self._users:
                self._check_rejected(old.get("userName"))
            candidate = self._apply_patch(kind, old, body)
            if kind is self._users:
                self._check_rejected(candidate.get("userName"))
            resource = self._update(kind, rid, old, candidate)
            if self.patch_returns_204:
                return Response(204, b"", {"ETag": resource["meta"]["version"]})
            if not self.patch_honours_projection:
                return self._resource_response(resource)
            # RFC 7644 §3.9: attributes/excludedAttributes apply to any answer with a resource.
            params = self._query_params(request.query)
            projection = _Projection.build(kind.schema, params.attributes, params.excluded)
            return self._resource_response(resource, 200, projection)

    def _delete(self, kind: _Kind, rid: str, request: Request) -> Response:
        with self._lock:
            old = self._find(kind, rid)
            self._check_etag(old, request)
            if kind is self._users:
                self._check_rejected(old.get("userName"))
                self._delete_user(rid)
            else:
                self._unindex(kind, rid, old)
                del kind.items[rid]
                for uid in self._members.pop(rid, set()):
                    self._user_groups.get(uid, set()).discard(rid)
            return Response(204)
