"""Signing in to Microsoft Graph: the azure-identity credential for ``[graph] auth``, Entra's hints.

The credential and the token provider are only ever handed Graph's own host as allowed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    AuthenticationProvider,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)

from syncd.config import Config, graph_client_secret
from syncd.credentials import Secret, graph_access_token, is_loopback_host
from syncd.errors import ConfigError


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


def build_auth_provider(config: Config) -> tuple[AuthenticationProvider, Any]:
    """The SDK's authentication provider and the azure-identity credential it uses (None for
    ``access_token``): the caller closes the credential, whose HTTP session holds a keep-alive
    connection to the authority until then."""
    host = urlsplit(config.graph.base_url).hostname or ""
    if config.graph.auth == "access_token":
        token = _StaticToken(graph_access_token(), [host])
        return BaseBearerTokenAuthenticationProvider(token), None
    credential = build_credential(config)
    provider = AzureIdentityAuthenticationProvider(
        credential, scopes=[_scope_for(config.graph.base_url)], allowed_hosts=[host]
    )
    return provider, credential


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
