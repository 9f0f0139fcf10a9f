"""GraphSource: reads users, groups and managers through msgraph-sdk, decoding page bytes itself.

The SDK builds requests, authenticates and retries (its middleware); page bodies come back as
bytes and are decoded with ``json.loads`` into plain dicts, because the SDK's model parsing
costs ~10 ms per user (docs/ARCHITECTURE.md, "The directory read").
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.request_information import RequestInformation
from kiota_http.middleware.options import RedirectHandlerOption
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_request_adapter import options as graph_options
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from syncd.adapters.graph_auth import build_auth_provider, entra_hint
from syncd.adapters.origin import Origin, shown
from syncd.adapters.transport import (
    BoundedTransport,
    RedirectRefused,
    ResponseTooLarge,
    connection_options,
    refuse_redirects,
)
from syncd.config import Config
from syncd.core.decode import merge_delta_object
from syncd.core.records import GROUP_SELECT, GROUP_TYPE, USER_SELECT, Assignments, DeltaRound
from syncd.errors import (
    ConfigError,
    CredentialsRefused,
    DeltaTokenExpired,
    GraphReadError,
    PermissionDenied,
    StopCycle,
    Unreachable,
)

PAGE_SIZE = 999


class _ODataErrors(dict[str, Any]):
    """The SDK's error mapping (every status parsed as an ODataError), importing the model
    only when an error comes: the models package costs ~5 ms of every start."""

    def __getitem__(self, key: str) -> Any:
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        return ODataError


ERROR_MAPPING = _ODataErrors(XXX=None)
USERS = "users"
GROUPS = "groups"
PERMISSION_HINTS = {
    USERS: "User.Read.All",
    GROUPS: "GroupMember.Read.All",
}
APPLICATION_PERMISSION = "Application.Read.All"  # the service principal and its assignments
NO_REDIRECTS = RedirectHandlerOption(should_redirect=False)


class GraphSource:
    """Microsoft Graph, read only."""

    def __init__(self, config: Config, *, timeout_seconds: float = 120.0) -> None:
        self._config = config
        self.base_url = config.graph.base_url.rstrip("/")
        self.origin = Origin.of(self.base_url)
        # Every answer is read whole and bounded; the proxy is the environment's, as for the
        # sink (trust_env would give proxied requests a transport of httpx's own). syncd's own
        # transport, closed in aclose: the SDK wraps a client's transports in one whose
        # aclose() closes nothing, so each cycle's keep-alive connections stayed open until the
        # collector found them (the daemon's sockets grew; make soak).
        self._transport = BoundedTransport(
            httpx.AsyncHTTPTransport(**connection_options(self.base_url, config.graph.ca_file)),
            config.graph.max_response_bytes,
        )
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds),
            base_url=self.base_url,
            transport=self._transport,
            trust_env=False,  # the proxy is chosen above; no other transport is mounted
            event_hooks={"response": [refuse_redirects]},
        )
        # The SDK's default middleware (retry 429/503/504 with Retry-After, etc.), redirects
        # not followed: Graph does not redirect these reads, and a redirect is an answer from
        # elsewhere (docs/ARCHITECTURE.md, "Links stay home").
        options = {**graph_options, RedirectHandlerOption.get_key(): NO_REDIRECTS}
        http = GraphClientFactory.create_with_default_middleware(client=http, options=options)
        self._http = http
        provider, self._credential = build_auth_provider(config)
        adapter = GraphRequestAdapter(provider, client=http)
        adapter.base_url = self.base_url
        self.client = GraphServiceClient(request_adapter=adapter)
        self._adapter = adapter
        self.requests = 0

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._transport.aclose()
        if self._credential is not None:
            self._credential.close()

    async def _send(
        self, info: RequestInformation, what: str, permission: str = ""
    ) -> dict[str, Any]:
        """One request; ``permission``: the one a 403 means is missing (else by ``what``)."""
        info.path_parameters["baseurl"] = self.base_url  # as the adapter would, to see the URL
        url = str(info.url)
        refused = self.origin.refusal(url)
        if refused:  # every link is checked where it is read; this holds for any request
            raise GraphReadError(f"syncd did not send {what} to Graph: {refused}")
        self.requests += 1
        try:
            raw = await self._adapter.send_primitive_async(info, "bytes", ERROR_MAPPING)
        except APIError as exc:
            raise _translate(exc, what, url, permission) from None
        except httpx.DecodingError:  # a body its Content-Encoding does not describe
            raise GraphReadError(
                f"Graph returned a page that cannot be decompressed for {what} ({shown(url)})"
            ) from None
        except httpx.TransportError as exc:
            raise Unreachable(
                f"cannot reach Microsoft Graph at {shown(url)}: {type(exc).__name__}"
            ) from None
        except (ResponseTooLarge, RedirectRefused) as exc:
            raise GraphReadError(
                f"Graph's answer to {what} ({shown(url)}) is refused: {exc}",
                status=getattr(exc, "status", 0),
            ) from None
        except (httpx.InvalidURL, ValueError) as exc:  # a next link that is no URL
            raise GraphReadError(f"Graph failed on {what}: not a URL to request: {exc}") from None
        except StopCycle:
            raise
        except Exception as exc:
            if type(exc).__module__.startswith("azure."):
                raise CredentialsRefused(
                    f"Graph authentication failed: {entra_hint(str(exc), self._config)}"
                ) from None
            if type(exc) is Exception or type(exc).__module__.startswith("kiota_http."):
                # How the SDK's redirect handler refuses a Location (or too many of them).
                reason = " ".join(str(exc).split())[:200]
                raise GraphReadError(f"Graph failed on {what}: {reason}") from None
            raise
        if not raw:
            raise GraphReadError(f"Graph returned an empty body for {what} ({shown(url)})")
        try:
            payload = json.loads(raw, parse_float=_finite, parse_constant=_finite)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than json reads
            raise GraphReadError(
                f"Graph returned a page that is not JSON for {what} ({shown(url)})"
            ) from None
        if not isinstance(payload, dict):
            raise GraphReadError(f"Graph returned an unexpected page for {what} ({shown(url)})")
        return payload

    async def delta(
        self,
        resource: str,
        link: str | None,
        on_object: Callable[[dict[str, Any]], None] | None = None,
        select: Sequence[str] = USER_SELECT,
    ) -> DeltaRound:
        """One delta round for ``users`` or ``groups`` (a full read when link is None).

        With ``on_object`` each object goes there as its page arrives instead of being kept.
        ``select``: the user properties a full read selects (the delta link keeps them).
        A round that fails part-way comes back with ``error`` set and the pages read whole;
        an expired delta token raises DeltaTokenExpired; credentials and connectivity raise.
        """
        builder: Any = self.client.users.delta if resource == USERS else self.client.groups.delta
        if link:
            refused = self.origin.refusal(link)
            if refused:  # stored by an older syncd, or base_url changed since
                raise DeltaTokenExpired(
                    f"the stored {resource} delta link is not Graph's: {refused}"
                )
            info = builder.with_url(link).to_get_request_information()
        else:
            params = builder.DeltaRequestBuilderGetQueryParameters(
                select=[*select, "manager"] if resource == USERS else [*GROUP_SELECT, "members"],
            )
            info = builder.to_get_request_information(RequestConfiguration(query_parameters=params))
        info.headers.try_add("Prefer", f"odata.maxpagesize={PAGE_SIZE}")
        result = DeltaRound()
        followed: set[str] = set()
        while True:
            where = f"{resource}/delta page {result.pages + 1}"
            try:
                page = await self._send(info, where)
                values = page.get("value")
                if not isinstance(values, list):
                    raise GraphReadError(f"Graph returned {where} without a value list")
            except GraphReadError as exc:
                if link and result.pages == 0 and exc.status == 410:
                    raise DeltaTokenExpired(str(exc), status=exc.status, code=exc.code) from None
                result.error = exc
                return result
            result.pages += 1
            for obj in values:
                if on_object is not None:
                    if isinstance(obj, dict):
                        on_object(obj)
                else:
                    merge_delta_object(result, obj)
            next_link = page.get("@odata.nextLink")
            if isinstance(next_link, str) and next_link:
                try:
                    info = self._follow(builder, next_link, followed, where)
                except GraphReadError as exc:
                    result.error = exc
                    return result
                continue
            delta_link = page.get("@odata.deltaLink")
            if not isinstance(delta_link, str) or not delta_link:
                result.error = GraphReadError(f"{resource}/delta ended without a deltaLink")
                return result
            if not delta_link.isascii():  # a URL is ASCII; a lone surrogate cannot be stored
                result.error = GraphReadError(f"{resource}/delta ended with a deltaLink not a URL")
                return result
            refused = self.origin.refusal(delta_link)
            if refused:  # not stored: the next cycle would send Graph's token there
                result.error = GraphReadError(
                    f"Graph's {where} ends with a deltaLink that is refused: {refused}"
                )
                return result
            result.delta_link = delta_link
            return result

    def _follow(
        self, builder: Any, link: str, followed: set[str], where: str
    ) -> RequestInformation:
        """The request for a page's ``@odata.nextLink``, if it stays on Graph and is new."""
        refused = self.origin.refusal(link)
        if refused:
            raise GraphReadError(f"Graph's {where} has a nextLink that is refused: {refused}")
        if link in followed:
            raise GraphReadError(
                f"Graph's {where} repeats the nextLink of an earlier page: not followed again"
            )
        followed.add(link)
        info: RequestInformation = builder.with_url(link).to_get_request_information()
        return info

    async def get_user(
        self, key: str, select: Sequence[str] = USER_SELECT
    ) -> dict[str, Any] | None:
        """One user by object id or UPN, with its manager's id."""
        builder = self.client.users.by_user_id(key)
        params = builder.UserItemRequestBuilderGetQueryParameters(
            select=list(select), expand=["manager($select=id)"]
        )
        info = builder.to_get_request_information(RequestConfiguration(query_parameters=params))
        try:
            return await self._send(info, f"user {key}")
        except GraphReadError as exc:
            if exc.status == 404:
                return None
            raise

    async def member_groups(self, user_id: str, *, transitive: bool) -> list[tuple[str, str]]:
        """(id, displayName) of the groups ``user_id`` is a member of (directly, or nested)."""
        item = self.client.users.by_user_id(user_id)
        builder: Any = item.transitive_member_of if transitive else item.member_of
        return [
            (obj["id"], obj["displayName"])
            async for obj in self._pages(builder, None, f"groups of user {user_id}")
            if obj.get("@odata.type") == GROUP_TYPE
            and isinstance(obj.get("id"), str)
            and isinstance(obj.get("displayName"), str)
        ]

    async def assignments(self, application: str) -> Assignments:
        """Who is assigned to the application, read whole (``appRoleAssignedTo``, paged)."""
        sp_id = await self._service_principal(application)
        builder = self.client.service_principals.by_service_principal_id(sp_id).app_role_assigned_to
        params = builder.AppRoleAssignedToRequestBuilderGetQueryParameters(
            select=["principalId", "principalType"], top=PAGE_SIZE
        )
        info = builder.to_get_request_information(RequestConfiguration(query_parameters=params))
        users: set[str] = set()
        groups: set[str] = set()
        what = "the assignments of the Learnster app"
        async for obj in self._pages(builder, info, what, APPLICATION_PERMISSION):
            principal, kind = obj.get("principalId"), obj.get("principalType")
            if isinstance(principal, str) and kind in ("User", "Group"):
                (users if kind == "User" else groups).add(sys.intern(principal))
        return Assignments(sp_id, frozenset(users), frozenset(groups))

    async def _service_principal(self, application: str) -> str:
        """The object id of the application's service principal, by appId or by object id."""
        what = "the Learnster app's service principal"
        by_app_id: Any = self.client.service_principals_with_app_id(application)
        by_id: Any = self.client.service_principals.by_service_principal_id(application)
        for builder, parameters in (
            (by_app_id, by_app_id.ServicePrincipalsWithAppIdRequestBuilderGetQueryParameters),
            (by_id, by_id.ServicePrincipalItemRequestBuilderGetQueryParameters),
        ):
            query = RequestConfiguration(query_parameters=parameters(select=["id"]))
            try:
                found = await self._send(
                    builder.to_get_request_information(query), what, APPLICATION_PERMISSION
                )
            except GraphReadError as exc:
                if exc.status in (400, 404):  # not an appId, or no such object
                    continue
                raise
            if isinstance(found.get("id"), str) and found["id"]:
                return str(found["id"])
        raise ConfigError(
            f"[scope] application {application!r}: the tenant has no enterprise application "
            "(service principal) with that application id or object id"
        )

    async def _pages(
        self, builder: Any, info: RequestInformation | None, what: str, permission: str = ""
    ) -> AsyncIterator[dict[str, Any]]:
        """Every object of a paged collection, following its next links."""
        info = info or builder.to_get_request_information()
        followed: set[str] = set()
        while True:
            page = await self._send(info, what, permission)
            values = page.get("value")
            if not isinstance(values, list):
                raise GraphReadError(f"Graph returned a page of {what} without a value list")
            for obj in values:
                if isinstance(obj, dict):
                    yield obj
            next_link = page.get("@odata.nextLink")
            if not isinstance(next_link, str) or not next_link:
                return
            info = self._follow(builder, next_link, followed, f"page of {what}")

    async def first_user(self) -> dict[str, Any] | None:
        """Read one user (test connection)."""
        params = self.client.users.UsersRequestBuilderGetQueryParameters(
            select=["id", "userPrincipalName"], top=1
        )
        info = self.client.users.to_get_request_information(
            RequestConfiguration(query_parameters=params)
        )
        page = await self._send(info, "users")
        values = page.get("value") or []
        return values[0] if values else None

    async def first_group(self) -> dict[str, Any] | None:
        params = self.client.groups.GroupsRequestBuilderGetQueryParameters(select=["id"], top=1)
        info = self.client.groups.to_get_request_information(
            RequestConfiguration(query_parameters=params)
        )
        page = await self._send(info, "groups")
        values = page.get("value") or []
        return values[0] if values else None


def _finite(text: str) -> float:
    """A JSON number as a float; NaN, Infinity and 1e400 (which is inf) are refused: JSON
    has no such values, and SQLite's JSON cannot store them in the snapshot."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _translate(
    exc: APIError, what: str, url: str, permission: str = ""
) -> GraphReadError | StopCycle:
    status = int(getattr(exc, "response_status_code", 0) or 0)
    code, message = "", "the answer is not in Graph's error format (a proxy's page?)"
    error = getattr(exc, "error", None)
    if error is not None:
        code = getattr(error, "code", "") or ""
        message = getattr(error, "message", "") or message
    if status == 401:
        return CredentialsRefused(f"Graph refused the token for {what} (401 {code}): {message}")
    if status == 403:
        needed = permission or PERMISSION_HINTS[USERS if what.startswith("user") else GROUPS]
        return PermissionDenied(
            f"Graph denied {what} (403 {code}): the app registration needs the application "
            f"permission {needed} with admin consent"
        )
    return GraphReadError(
        f"Graph failed on {what} ({shown(url)}): HTTP {status}{f' {code}' if code else ''}: "
        f"{message}",
        status=status,
        code=code,
    )
