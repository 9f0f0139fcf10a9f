"""Self-signed client certificates for ``[graph] auth = "certificate"`` against the fake tenant.

``make_client_certificate()`` makes an RSA key and a certificate for it; ``.pem`` is the one file
azure-identity's CertificateCredential reads (key, then certificate) and ``.certificate_pem`` the
public part an app registration holds (``FakeGraph(client_certificate=...)``).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class ClientCertificate:
    """A private key and its self-signed certificate, both PEM."""

    private_key_pem: bytes
    certificate_pem: bytes

    @property
    def pem(self) -> bytes:
        """Key and certificate in one PEM, what ``[graph] certificate_path`` names."""
        return self.private_key_pem + self.certificate_pem

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem)

    @property
    def thumbprint(self) -> str:
        """The SHA-1 thumbprint in hex, as the Entra portal lists a certificate."""
        return self.certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - an id

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write ``pem`` to ``path``, readable by its owner only; returns the path."""
        target = Path(path)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(self.pem)
        return target


def make_client_certificate(
    common_name: str = "syncd", *, valid_days: int = 365, key_size: int = 2048
) -> ClientCertificate:
    """A new RSA key (what CertificateCredential signs with) and a self-signed certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=valid_days))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return ClientCertificate(key_pem, certificate.public_bytes(serialization.Encoding.PEM))


def load_certificate(pem: bytes | str) -> x509.Certificate:
    """The first certificate in a PEM (a private key in the same file is skipped)."""
    return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)


def thumbprints(certificate: x509.Certificate) -> dict[str, str]:
    """The JWT header values that name ``certificate``: ``x5t`` (SHA-1) and ``x5t#S256``."""

    def b64url(digest: bytes) -> str:
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    return {
        "x5t": b64url(certificate.fingerprint(hashes.SHA1())),  # noqa: S303 - an id, not a MAC
        "x5t#S256": b64url(certificate.fingerprint(hashes.SHA256())),
    }
