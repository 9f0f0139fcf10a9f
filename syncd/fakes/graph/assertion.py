"""Client assertions: the JWT an app signs with its certificate instead of sending a secret.

Checked in the order and with the AADSTS codes Entra answers with: a JWT that does not parse
(50027), an algorithm other than RS256/PS256 (5002730), ``iss``/``sub`` not the client
(700021, 50048), a thumbprint no registered certificate has or a signature its key does not
verify (700027), an ``aud`` other than this tenant's token endpoint (700023), ``exp``/``nbf``
outside the valid time (700024).
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from syncd.fakes.certificates import load_certificate, thumbprints
from syncd.fakes.graph.base import _unb64

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Entra tolerates a few minutes between the client's clock and its own.
CLOCK_SKEW_SECONDS = 300
_DOCS = (
    "Review the documentation at "
    "https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."
)


class AssertionRefused(Exception):
    """Why the token endpoint refuses an assertion, as Entra's error envelope carries it."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description


@dataclass(frozen=True)
class _Jwt:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


class ClientCertificates:
    """The certificates registered for the app, found by either thumbprint a JWT header names."""

    def __init__(self) -> None:
        # keyed by the digest itself: clients differ on whether base64url keeps its '=' padding
        self._by_thumbprint: dict[tuple[str, bytes], x509.Certificate] = {}

    def add(self, pem: bytes | str) -> None:
        """Register the (first) certificate in ``pem``; a private key beside it is ignored."""
        certificate = load_certificate(pem)
        for header, value in thumbprints(certificate).items():
            self._by_thumbprint[(header, _unb64(value))] = certificate

    def find(self, header: dict[str, Any]) -> tuple[x509.Certificate | None, str]:
        """The certificate ``header`` names and its thumbprint in hex (for the messages)."""
        for name in ("x5t#S256", "x5t"):
            value = header.get(name)
            if isinstance(value, str) and value:
                try:
                    digest = _unb64(value.rstrip("="))
                except (binascii.Error, ValueError):
                    raise _malformed() from None
                return self._by_thumbprint.get((name, digest)), digest.hex().upper()
        return None, ""


def verify_assertion(
    assertion: str,
    *,
    client_id: str,
    audiences: set[str],
    certificates: ClientCertificates,
    now: float,
) -> None:
    """Raise ``AssertionRefused`` unless ``assertion`` is one Entra would accept from the app."""
    jwt = _parse(assertion)
    alg = jwt.header.get("alg")
    if alg not in ("RS256", "PS256"):
        raise _unsupported_key()
    issuer, subject = jwt.claims.get("iss"), jwt.claims.get("sub")
    if issuer != client_id:
        raise AssertionRefused(
            401,
            "invalid_client",
            700021,
            f"Client assertion application identifier doesn't match 'client_id' parameter. {_DOCS}",
        )
    if subject != issuer:
        raise AssertionRefused(
            401,
            "invalid_client",
            50048,
            "Subject must match the issuer claim in the client assertion.",
        )
    certificate, shown = certificates.find(jwt.header)
    if certificate is None:
        raise AssertionRefused(
            401,
            "invalid_client",
            700027,
            "The certificate with identifier used to sign the client assertion is not registered "
            f"on application. [Reason - The key was not found., Thumbprint of key used by client: "
            f"'{shown}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to "
            f"see configured keys for app Id '{client_id}'.]",
        )
    _check_signature(jwt, str(alg), certificate, shown)
    audience = jwt.claims.get("aud")
    if not isinstance(audience, str):
        raise _malformed()  # Entra takes one audience, not a list
    if audience.lower() not in {a.lower() for a in audiences}:
        raise AssertionRefused(
            401,
            "invalid_client",
            700023,
            f"Client assertion audience claim does not match Realm issuer. {_DOCS}",
        )
    _check_time(jwt.claims, now)


def _parse(assertion: str) -> _Jwt:
    parts = assertion.split(".")
    if len(parts) != 3:
        raise _malformed()
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except (binascii.Error, ValueError):
        raise _malformed() from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _malformed()
    return _Jwt(header, claims, f"{parts[0]}.{parts[1]}".encode(), signature)


def _check_signature(jwt: _Jwt, alg: str, certificate: x509.Certificate, shown: str) -> None:
    key = certificate.public_key()
    if not isinstance(key, RSAPublicKey):
        raise _unsupported_key()
    scheme: padding.AsymmetricPadding = padding.PKCS1v15()
    if alg == "PS256":
        scheme = padding.PSS(
            mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH
        )
    try:
        key.verify(jwt.signature, jwt.signing_input, scheme, hashes.SHA256())
    except InvalidSignature:
        start = certificate.not_valid_before_utc.strftime("%m/%d/%Y %H:%M:%S")
        end = certificate.not_valid_after_utc.strftime("%m/%d/%Y %H:%M:%S")
        raise AssertionRefused(
            401,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. [Reason - The provided signature "
            f"value did not match the expected signature value., Thumbprint of key used by "
            f"client: '{shown}', Found key 'Start={start}, End={end}']",
        ) from None


def _check_time(claims: dict[str, Any], now: float) -> None:
    expiry, not_before = claims.get("exp"), claims.get("nbf", 0)
    if not isinstance(expiry, int | float) or not isinstance(not_before, int | float):
        raise _malformed()
    if expiry < now - CLOCK_SKEW_SECONDS or not_before > now + CLOCK_SKEW_SECONDS:
        raise AssertionRefused(
            401,
            "invalid_client",
            700024,
            f"Client assertion is not within its valid time range. Current time: {_stamp(now)}, "
            f"assertion valid from {_stamp(not_before)}, expiry time of assertion "
            f"{_stamp(expiry)}. {_DOCS}",
        )


def _stamp(epoch: float) -> str:
    # Entra writes seven digits of fractional seconds; a claim past year 9999 is shown as that
    epoch = min(max(epoch, 0.0), 253402300799.0)
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _malformed() -> AssertionRefused:
    return AssertionRefused(400, "invalid_request", 50027, "JWT token is invalid or malformed.")


def _unsupported_key() -> AssertionRefused:
    return AssertionRefused(
        400,
        "invalid_request",
        5002730,
        "Invalid JWT token. Unsupported key for the signing algorithm.",
    )
