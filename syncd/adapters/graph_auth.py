"""Signing in to Microsoft Graph: the azure-identity credential for ``[graph] auth``, Entra's hints.

The credential and the token provider are only ever handed Graph's own host as allowed.
"""

from __future__ import annotations

import re
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

from syncd.adapters.origin import Origin
from syncd.config import Config, graph_client_secret
from syncd.credentials import Secret, graph_access_token, is_loopback_host
from syncd.errors import ConfigError


class _StaticToken(AccessTokenProvider):
    """Bearer token given from outside (auth = "access_token"), for Graph's origin only.

    The SDK asks the provider for a token per request; an empty one sends none. Like
    azure-identity's provider it asks its allowed-hosts validator, and it also insists on
    Graph's scheme and port (docs/ARCHITECTURE.md, "Links stay home").
    """

    def __init__(self, token: Secret, base_url: str) -> None:
        self._token = token
        self._origin = Origin.of(base_url)
        self._validator = AllowedHostsValidator([self._origin.host])

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] | None = None
    ) -> str:
        if not self._validator.is_url_host_valid(uri) or self._origin.refusal(uri):
            return ""
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
        token = _StaticToken(graph_access_token(), config.graph.base_url)
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
    # Entra gives 700027 both for a certificate it does not know and for a key that is not the
    # certificate's: either way the file and the app registration do not match.
    "AADSTS700027": (
        "the certificate{thumbprint} in [graph] certificate_path is not one of the app "
        "registration's credentials (or the private key in that file is not its key): upload "
        "the certificate's public part to app {client_id} under Certificates & secrets, or "
        "point certificate_path at the PEM of a certificate registered there"
    ),
    "AADSTS700024": (
        "the signed client assertion is outside its valid time for Entra: this host's clock is "
        "off, set it right (NTP)"
    ),
    "AADSTS700023": (
        "the client assertion was made for another token endpoint: check [graph] authority and "
        "tenant_id"
    ),
}


def entra_hint(message: str, config: Config) -> str:
    """What an Entra sign-in error means for this configuration, with its AADSTS code."""
    # Entra names the certificate it was shown by its SHA-1 thumbprint, as the portal lists it
    shown = re.search(r"Thumbprint of key used by client: '([0-9A-Fa-f]+)'", message)
    fields = {
        "tenant_id": config.graph.tenant_id,
        "client_id": config.graph.client_id,
        "thumbprint": f" (thumbprint {shown[1]})" if shown else "",
    }
    for code, hint in _ENTRA_HINTS.items():
        if f"{code}:" in message or message.startswith(code):
            return f"{hint.format(**fields)} ({code})"
    if "Unable to get authority configuration" in message:
        # MSAL's words when the tenant's OpenID metadata does not exist (an unknown tenant).
        return (
            f"tenant {config.graph.tenant_id!r} does not exist at {config.graph.authority}: "
            "check [graph] tenant_id (and authority for sovereign clouds)"
        )
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"
