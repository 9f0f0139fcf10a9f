"""GraphSource: reads users, groups and managers through msgraph-sdk, decoding page bytes itself.

The SDK builds requests, authenticates and retries (its middleware); page bodies come back as
bytes and are decoded with ``json.loads`` into plain dicts, because the SDK's model parsing
costs ~10 ms per user (see DESIGN §1).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from kiota_abstractions.api_error import APIError
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    AuthenticationProvider,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.request_information import RequestInformation
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_request_adapter import options as graph_options
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from syncd.config import (
    Config,
    Secret,
    graph_access_token,
    graph_client_secret,
    is_loopback_host,
    tls_verify,
)
from syncd.errors import ConfigError, SourceError, StopCycle
from syncd.model import GROUP_SELECT, GROUP_TYPE, USER_SELECT

PAGE_SIZE = 999
ERROR_MAPPING: dict[str, Any] = {"XXX": ODataError}
USERS = "users"
GROUPS = "groups"
PERMISSION_HINTS = {
    USERS: "User.Read.All",
    GROUPS: "GroupMember.Read.All",
}


class DeltaTokenExpired(SourceError):
    """Graph no longer knows the delta token (410 / syncStateNotFound): read everything again."""


class PartialRead(SourceError):
    """A delta round stopped part-way; ``partial`` holds the pages that were read whole."""

    def __init__(self, message: str, partial: DeltaRound) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass
class DeltaRound:
    """One complete delta round: merged objects by id, removals by id, and the next link."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)  # id -> "changed" | "deleted"
    delta_link: str = ""
    pages: int = 0


class _StaticToken(AccessTokenProvider):
    """Bearer token given from outside (auth = "access_token")."""

    def __init__(self, token: Secret, allowed_hosts: list[str]) -> None:
        self._token = token
        self._validator = AllowedHostsValidator(allowed_hosts)

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] | None = None
    ) -> str:
        return self._token.reveal()

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._validator


def _scope_for(base_url: str) -> str:
    host = urlsplit(base_url).hostname or "graph.microsoft.com"
    if is_loopback_host(host):
        host = "graph.microsoft.com"
    return f"https://{host}/.default"


def build_credential(config: Config) -> Any:
    """The azure-identity credential for ``[graph] auth``."""
    from azure import identity

    graph = config.graph
    common: dict[str, Any] = {"authority": graph.authority}
    if is_loopback_host(graph.authority.split(":")[0]):
        # A loopback authority (tests, demo) cannot be validated against Microsoft's cloud list.
        common["disable_instance_discovery"] = True
    if graph.ca_file:
        common["connection_verify"] = graph.ca_file
    if graph.auth == "client_secret":
        return identity.ClientSecretCredential(
            graph.tenant_id, graph.client_id, graph_client_secret(config).reveal(), **common
        )
    if graph.auth == "certificate":
        return identity.CertificateCredential(
            graph.tenant_id, graph.client_id, certificate_path=graph.certificate_path, **common
        )
    if graph.auth == "managed_identity":
        return identity.ManagedIdentityCredential(client_id=graph.client_id or None)
    if graph.auth == "workload_identity":
        return identity.WorkloadIdentityCredential(
            tenant_id=graph.tenant_id, client_id=graph.client_id, **common
        )
    if graph.auth == "default":
        return identity.DefaultAzureCredential()
    raise ConfigError(f"[graph] auth = {graph.auth!r} is not a credential type")


def build_auth_provider(config: Config) -> AuthenticationProvider:
    host = urlsplit(config.graph.base_url).hostname or ""
    if config.graph.auth == "access_token":
        return BaseBearerTokenAuthenticationProvider(_StaticToken(graph_access_token(), [host]))
    return AzureIdentityAuthenticationProvider(
        build_credential(config), scopes=[_scope_for(config.graph.base_url)], allowed_hosts=[host]
    )


class GraphSource:
    """Microsoft Graph, read only."""

    def __init__(self, config: Config, *, timeout_seconds: float = 120.0) -> None:
        self._config = config
        self.base_url = config.graph.base_url.rstrip("/")
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds),
            verify=tls_verify(config.graph.ca_file),
            base_url=self.base_url,
        )
        # The SDK's default middleware: retry (429/503/504 with Retry-After), redirect, etc.
        http = GraphClientFactory.create_with_default_middleware(client=http, options=graph_options)
        self._http = http
        adapter = GraphRequestAdapter(build_auth_provider(config), client=http)
        adapter.base_url = self.base_url
        self.client = GraphServiceClient(request_adapter=adapter)
        self._adapter = adapter
        self.requests = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, info: RequestInformation, what: str) -> dict[str, Any]:
        self.requests += 1
        try:
            raw = await self._adapter.send_primitive_async(info, "bytes", ERROR_MAPPING)
        except APIError as exc:
            raise _translate(exc, what) from None
        except httpx.TransportError as exc:
            raise StopCycle(
                f"cannot reach Microsoft Graph at {self.base_url}: {type(exc).__name__}"
            ) from None
        except StopCycle:
            raise
        except Exception as exc:
            if type(exc).__module__.startswith("azure."):
                raise StopCycle(
                    f"Graph authentication failed: {entra_hint(str(exc), self._config)}"
                ) from None
            raise
        if not raw:
            raise SourceError(f"Graph returned an empty body for {what}")
        try:
            payload = json.loads(raw)
        except ValueError:
            raise SourceError(f"Graph returned a page that is not JSON for {what}") from None
        if not isinstance(payload, dict):
            raise SourceError(f"Graph returned an unexpected page for {what}")
        return payload

    async def delta(
        self,
        resource: str,
        link: str | None,
        on_object: Callable[[dict[str, Any]], None] | None = None,
    ) -> DeltaRound:
        """One complete delta round for ``users`` or ``groups`` (a full read when link is None).

        With ``on_object`` each object goes there as its page arrives instead of being kept.
        """
        builder: Any = self.client.users.delta if resource == USERS else self.client.groups.delta
        if link:
            info = builder.with_url(link).to_get_request_information()
        else:
            params = builder.DeltaRequestBuilderGetQueryParameters(
                select=[*USER_SELECT, "manager"]
                if resource == USERS
                else [*GROUP_SELECT, "members"],
            )
            info = builder.to_get_request_information(RequestConfiguration(query_parameters=params))
        info.headers.try_add("Prefer", f"odata.maxpagesize={PAGE_SIZE}")
        result = DeltaRound()
        while True:
            where = f"{resource}/delta page {result.pages + 1}"
            try:
                page = await self._send(info, where)
                values = page.get("value")
                if not isinstance(values, list):
                    raise SourceError(f"Graph returned {where} without a value list")
            except SourceError as exc:
                if link and result.pages == 0 and getattr(exc, "status", 0) == 410:
                    raise DeltaTokenExpired(str(exc)) from None
                raise PartialRead(str(exc), result) from None
            result.pages += 1
            for obj in values:
                if on_object is not None:
                    if isinstance(obj, dict):
                        on_object(obj)
                else:
                    _merge_delta_object(result, obj, resource)
            next_link = page.get("@odata.nextLink")
            if isinstance(next_link, str) and next_link:
                info = builder.with_url(next_link).to_get_request_information()
                continue
            delta_link = page.get("@odata.deltaLink")
            if not isinstance(delta_link, str) or not delta_link:
                raise PartialRead(f"{resource}/delta ended without a deltaLink", result)
            result.delta_link = delta_link
            return result

    async def get_user(self, key: str) -> dict[str, Any] | None:
        """One user by object id or UPN, with its manager's id."""
        builder = self.client.users.by_user_id(key)
        params = builder.UserItemRequestBuilderGetQueryParameters(
            select=list(USER_SELECT), expand=["manager($select=id)"]
        )
        info = builder.to_get_request_information(RequestConfiguration(query_parameters=params))
        try:
            return await self._send(info, f"user {key}")
        except SourceError as exc:
            if getattr(exc, "status", 0) == 404:
                return None
            raise

    async def member_groups(self, user_id: str, *, transitive: bool) -> list[tuple[str, str]]:
        """(id, displayName) of the groups ``user_id`` is a member of (directly, or nested)."""
        item = self.client.users.by_user_id(user_id)
        builder: Any = item.transitive_member_of if transitive else item.member_of
        info = builder.to_get_request_information()
        groups: list[tuple[str, str]] = []
        while True:
            page = await self._send(info, f"groups of user {user_id}")
            for obj in page.get("value") or []:
                if (
                    isinstance(obj, dict)
                    and obj.get("@odata.type") == GROUP_TYPE
                    and isinstance(obj.get("id"), str)
                    and isinstance(obj.get("displayName"), str)
                ):
                    groups.append((obj["id"], obj["displayName"]))
            next_link = page.get("@odata.nextLink")
            if not isinstance(next_link, str) or not next_link:
                return groups
            info = builder.with_url(next_link).to_get_request_information()

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


def _merge_delta_object(result: DeltaRound, obj: Any, resource: str) -> None:
    """Fold one delta object into the round: repeated objects merge, member lists concatenate."""
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return
    object_id = obj["id"]
    removed = obj.get("@removed")
    if isinstance(removed, dict):
        result.removed[object_id] = "deleted" if removed.get("reason") == "deleted" else "changed"
        result.objects.pop(object_id, None)
        return
    result.removed.pop(object_id, None)
    current = result.objects.setdefault(object_id, {"id": object_id})
    for key, value in obj.items():
        if key == "members@delta" and isinstance(value, list):
            # Compact (type, id, removed) triples: a big tenant's round holds 500,000 of them.
            members = current.setdefault("members@delta", [])
            members.extend(
                (
                    sys.intern(str(m.get("@odata.type", ""))),
                    sys.intern(m["id"]),  # shared with the user's own id: no copy per group
                    isinstance(m.get("@removed"), dict),
                )
                for m in value
                if isinstance(m, dict) and isinstance(m.get("id"), str)
            )
        elif not key.startswith("@"):
            current[key] = value


def _translate(exc: APIError, what: str) -> SourceError | StopCycle:
    status = int(getattr(exc, "response_status_code", 0) or 0)
    code, message = "", str(exc)
    error = getattr(exc, "error", None)
    if error is not None:
        code = getattr(error, "code", "") or ""
        message = getattr(error, "message", "") or message
    if status == 401:
        return StopCycle(f"Graph refused the token for {what} (401 {code}): {message}")
    if status == 403:
        resource = USERS if what.startswith("user") else GROUPS
        return StopCycle(
            f"Graph denied {what} (403 {code}): the app registration needs the application "
            f"permission {PERMISSION_HINTS[resource]} with admin consent"
        )
    source_error = SourceError(f"Graph failed on {what}: HTTP {status} {code}: {message}")
    source_error.status = status  # type: ignore[attr-defined]
    return source_error


# Entra's error codes for the mistakes people make while setting up an app registration.
_ENTRA_HINTS = {
    "AADSTS90002": "tenant {tenant_id!r} does not exist: check [graph] tenant_id",
    "AADSTS900023": "tenant {tenant_id!r} is not a valid tenant id or domain: check [graph] tenant_id",
    "AADSTS700016": (
        "application {client_id} is not registered in tenant {tenant_id!r}: check [graph] client_id"
    ),
    "AADSTS7000215": (
        "the client secret is wrong: use the secret's Value (not its Secret ID) in "
        "SYNCD_GRAPH_CLIENT_SECRET or the graph-client-secret credential"
    ),
    "AADSTS7000222": "the client secret has expired: create a new one for the app registration",
    "AADSTS500011": "the Graph resource is unknown in this cloud: check [graph] base_url",
}


def entra_hint(message: str, config: Config) -> str:
    """What an Entra sign-in error means for this configuration, with its AADSTS code."""
    for code, hint in _ENTRA_HINTS.items():
        if f"{code}:" in message or message.startswith(code):
            return f"{hint.format(tenant_id=config.graph.tenant_id, client_id=config.graph.client_id)} ({code})"
    if "Unable to get authority configuration" in message:
        # MSAL's words when the tenant's OpenID metadata does not exist (an unknown tenant).
        return (
            f"tenant {config.graph.tenant_id!r} does not exist at {config.graph.authority}: "
            "check [graph] tenant_id (and authority for sovereign clouds)"
        )
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"
