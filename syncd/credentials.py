"""Credentials and trust: where syncd reads its secrets, which certificates and hosts it trusts.

Secrets come from the environment, systemd credentials or ``*_file`` settings, never from the
TOML, and are held as ``Secret``, which never shows itself in a log line or an error.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from pathlib import Path

from syncd.errors import ConfigError


class Secret:
    """A string that never shows itself in repr, str or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def read_secret(env_name: str, credential_name: str, file_setting: str, what: str) -> Secret:
    value = os.environ.get(env_name)
    if value:
        return Secret(value.strip())
    candidates: list[Path] = []
    credentials_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials_dir:
        candidates.append(Path(credentials_dir) / credential_name)
    if file_setting:
        candidates.append(Path(file_setting))
    for candidate in candidates:
        try:
            text = candidate.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigError(f"cannot read the {what} from {candidate}: {exc.strerror}") from None
        if text:
            return Secret(text)
        raise ConfigError(f"the {what} file {candidate} is empty")
    raise ConfigError(
        f"no {what}: set {env_name}, or provide the systemd credential {credential_name!r}"
        + (f", or the file {file_setting}" if file_setting else "")
    )


def graph_access_token() -> Secret:
    """A pre-acquired Graph bearer token (auth = "access_token")."""
    return read_secret("SYNCD_GRAPH_ACCESS_TOKEN", "graph-access-token", "", "Graph access token")


def tls_verify(ca_file: str, *, used: bool = True) -> ssl.SSLContext:
    """What httpx should verify server certificates with.

    Without ``ca_file``: certifi's bundle, as httpx uses by default; with it: the system store
    plus that file. Built once per file (and its modification time): loading a CA store costs
    ~15 ms, and every client of a cycle can share the same context. ``used=False`` (plain
    http on loopback, no https proxy) and no ``ca_file`` to check: a context that trusts no
    certificate, so nothing is loaded for connections that never speak TLS (any that did
    would fail closed).
    """
    if not used and not ca_file:
        return _TRUSTS_NOTHING
    stamp = os.stat(ca_file).st_mtime_ns if ca_file and os.path.exists(ca_file) else 0
    key = (ca_file, stamp)
    context = _TLS_CONTEXTS.get(key)
    if context is None:
        if ca_file:
            context = ssl.create_default_context()
            try:
                context.load_verify_locations(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"ca_file {ca_file} cannot be loaded: {exc}") from None
        else:
            import certifi

            context = ssl.create_default_context(cafile=certifi.where())
        _TLS_CONTEXTS[key] = context
    return context


_TLS_CONTEXTS: dict[tuple[str, int], ssl.SSLContext] = {}
_TRUSTS_NOTHING = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, with no CA loaded


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
