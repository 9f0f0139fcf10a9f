"""The fake identity platform: OpenID discovery, the client-credentials token endpoint, tokens."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from syncd.fakes._http import Request, Response
from syncd.fakes.graph.assertion import (
    JWT_BEARER,
    AssertionRefused,
    ClientCertificates,
    verify_assertion,
)
from syncd.fakes.graph.base import _ApiError, _b64, _GraphBase

_GRAPH_SCOPES = frozenset(
    {"https://graph.microsoft.com/.default", "00000003-0000-0000-c000-000000000000/.default"}
)


class _Identity(_GraphBase):
    """The tenant's one app: its secret and certificates, its tokens and its permissions."""

    client_id: str
    client_secret: str | None
    client_certificates: ClientCertificates
    clock_offset_seconds: float
    access_token: str | None
    permissions: set[str]
    _jwt_key: bytes
    _issued: dict[str, float]

    def _init_identity(
        self,
        client_id: str,
        client_secret: str | None,
        client_certificate: bytes | str | None,
        access_token: str | None,
    ) -> None:
        """The app's credentials and the token state (``FakeGraph.__init__`` calls this)."""
        self.client_id = client_id
        self.client_secret = client_secret
        self.client_certificates = ClientCertificates()
        if client_certificate is not None:
            self.client_certificates.add(client_certificate)
        self.access_token = access_token
        # How far the identity platform's clock runs ahead of this host's (it judges assertions).
        self.clock_offset_seconds = 0.0
        self._jwt_key = secrets.token_bytes(32)
        self._issued = {}  # access token -> expiry (epoch seconds)

    @property
    def token_url(self) -> str:
        """The OAuth2 token endpoint of this tenant."""
        return self._token_url_for(self.tenant_id)

    def _token_url_for(self, tenant: str) -> str:
        return f"{self.origin}/{tenant}/oauth2/v2.0/token"

    def add_client_certificate(self, pem: bytes | str) -> None:
        """Register one more certificate for the app (the first in ``pem``; a key is ignored)."""
        with self._lock:
            self.client_certificates.add(pem)

    def issue_token(self) -> str:
        """Issue a bearer token directly, as the token endpoint would (for tests)."""
        with self._lock:
            return self._issue()

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token the token endpoint has issued (for tests that look for leaks)."""
        with self._lock:
            return list(self._issued)

    def expire_access_tokens(self) -> None:
        """Every issued access token is now expired (401); the fixed ``access_token`` stays."""
        with self._lock:
            self._issued = dict.fromkeys(self._issued, 0.0)

    def _authenticate(self, req: Request) -> None:
        header = req.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = {
            "WWW-Authenticate": (
                f'Bearer realm="", authorization_uri="{self.origin}/{self.tenant_id}'
                '/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'
            )
        }
        if not token or scheme.lower() != "bearer":
            raise _ApiError(401, "InvalidAuthenticationToken", "Access token is empty.", challenge)
        if self.access_token is not None and hmac.compare_digest(
            token.encode(), self.access_token.encode()
        ):
            return
        with self._lock:
            expiry = self._issued.get(token)
        if expiry is None:
            raise _ApiError(
                401,
                "InvalidAuthenticationToken",
                "IDX14100: JWT is not well formed, or the token is not one this tenant issued.",
                challenge,
            )
        if expiry < time.time():
            raise _ApiError(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
                challenge,
            )

    def _require(self, accepted: frozenset[str]) -> None:
        if not (self.permissions & accepted):
            raise _ApiError(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )

    # ------------------------------------------------------------------ identity platform

    def _identity(self, req: Request, seg: list[str]) -> Response:
        tenant = seg[0]
        known_tenant = tenant.lower() in (self.tenant_id.lower(), self.tenant_guid)
        if seg[1:] == ["v2.0", ".well-known", "openid-configuration"] and req.method == "GET":
            if not known_tenant:
                return self._aad_error(400, "invalid_request", 90002, self._no_tenant(tenant))
            return self._ok(req, self._openid_configuration())
        if seg[1:] == ["oauth2", "v2.0", "token"] and req.method == "POST":
            return self._token(req, tenant, known_tenant)
        raise _ApiError(404, "NotFound", f"No identity endpoint at {req.path}")

    @staticmethod
    def _no_tenant(tenant: str) -> str:
        return (
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
            "are signing into the correct cloud. Check with your subscription administrator, "
            "this may happen if there are no active subscriptions for the tenant."
        )

    def _openid_configuration(self) -> dict[str, Any]:
        root = f"{self.origin}/{self.tenant_guid}"
        return {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{self.origin}/{self.tenant_guid}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{root}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.base_url}/oidc/userinfo",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "roles"],
            "kerberos_endpoint": f"{root}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def _aad_error(self, status: int, error: str, code: int, description: str) -> Response:
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        body = {
            "error": error,
            "error_description": (
                f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} "
                f"Timestamp: {stamp}"
            ),
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"{self.origin}/error?code={code}",
        }
        return Response(status, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def _token(self, req: Request, tenant: str, known_tenant: bool) -> Response:
        if not known_tenant:
            return self._aad_error(400, "invalid_request", 90002, self._no_tenant(tenant))
        form = {k: v[-1] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type")
        if grant != "client_credentials":
            return self._aad_error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
        client_id = form.get("client_id")
        if not client_id:
            return self._aad_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        if client_id != self.client_id:
            return self._aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'. This can happen if the application has not been installed "
                "by the administrator of the tenant or consented to by any user in the tenant.",
            )
        refused = self._client_refusal(form, client_id)
        if refused is not None:
            return refused
        scope = form.get("scope", "")
        scopes = scope.split()
        if not scopes or not all(s.endswith("/.default") for s in scopes):
            return self._aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        unknown = [s for s in scopes if s.lower() not in _GRAPH_SCOPES]
        if unknown:
            resource = unknown[0].removesuffix("/.default")
            return self._aad_error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{self.tenant_id}. This can happen if the application has not been installed "
                "by the administrator of the tenant or consented to by any user in the tenant.",
            )
        with self._lock:
            token = self._issue()
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": token,
        }
        return Response(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def _client_refusal(self, form: dict[str, str], client_id: str) -> Response | None:
        """Why the client's secret or certificate's assertion is refused, or None."""
        assertion = form.get("client_assertion")
        if assertion:
            if form.get("client_assertion_type") != JWT_BEARER:
                return self._aad_error(
                    400, "invalid_request", 90011, "Unexpected client assertion type."
                )
            try:
                verify_assertion(
                    assertion,
                    client_id=client_id,
                    audiences={self._token_url_for(t) for t in (self.tenant_id, self.tenant_guid)},
                    certificates=self.client_certificates,
                    now=time.time() + self.clock_offset_seconds,
                )
            except AssertionRefused as refused:
                return self._aad_error(
                    refused.status, refused.error, refused.code, refused.description
                )
            return None
        secret = form.get("client_secret")
        if not secret:
            return self._aad_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        if self.client_secret is None or not hmac.compare_digest(
            secret.encode(), self.client_secret.encode()
        ):
            return self._aad_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                f"the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
            )
        return None

    def _issue(self) -> str:
        now = int(time.time())
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
        claims = {
            "aud": "https://graph.microsoft.com",
            "iss": f"https://sts.windows.net/{self.tenant_guid}/",
            "iat": now,
            "nbf": now,
            "exp": now + 3599,
            "appid": self.client_id,
            "tid": self.tenant_guid,
            "roles": sorted(self.permissions),
            "jti": secrets.token_hex(8),
        }
        payload = _b64(json.dumps(claims).encode())
        signature = hmac.new(self._jwt_key, f"{header}.{payload}".encode(), hashlib.sha256)
        token = f"{header}.{payload}.{_b64(signature.digest())}"
        self._issued[token] = now + 3599
        return token
