"""Which links stay on Graph's origin, and how a URL is shown in a message."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from syncd.adapters.origin import Origin, shown
from syncd.adapters.transport import speaks_tls
from syncd.credentials import tls_verify
from syncd.errors import ConfigError

GRAPH = Origin.of("https://graph.microsoft.com/v1.0")


@pytest.mark.parametrize(
    "link",
    [
        "https://graph.microsoft.com/v1.0/users/delta?$skiptoken=abc",
        "https://GRAPH.microsoft.com/v1.0/users/delta?$deltatoken=abc",
        "https://graph.microsoft.com:443/v1.0/groups/delta()?$skiptoken=x",
        "https://graph.microsoft.com/V1.0/users/delta",
    ],
)
def test_links_on_graphs_origin_are_followed(link: str) -> None:
    assert GRAPH.refusal(link) is None


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        (
            "https://evil.example/v1.0/users/delta?$skiptoken=a",
            "points at https://evil.example:443",
        ),
        ("http://graph.microsoft.com/v1.0/users/delta", "points at http://graph.microsoft.com:80"),
        ("https://graph.microsoft.com:8443/v1.0/users", "graph.microsoft.com:8443"),
        ("https://graph.microsoft.com.evil.example/v1.0/users", "graph.microsoft.com.evil.example"),
        ("https://graph.microsoft.com@evil.example/v1.0/users", "user information"),
        ("https://graph.microsoft.com/beta/users/delta", "outside '/v1.0/'"),
        ("https://graph.microsoft.com/v1.0evil/users", "outside '/v1.0/'"),
        ("/v1.0/users/delta?$skiptoken=relative", "points at no scheme"),
        ("https://[::1/v1.0/users", "not a valid URL"),
        ("https://graph.microsoft.com/v1.0/\ud800", "not a valid URL"),  # a lone surrogate
    ],
)
def test_links_elsewhere_are_refused_naming_the_host_only(link: str, reason: str) -> None:
    refusal = GRAPH.refusal(link)
    assert refusal is not None
    assert reason in refusal
    assert "token" not in refusal


def test_a_loopback_origin_keeps_its_port() -> None:
    fake = Origin.of("http://127.0.0.1:8080/v1.0/")
    assert fake.refusal("http://127.0.0.1:8080/v1.0/users/delta") is None
    assert fake.refusal("http://127.0.0.2:8080/v1.0/users/delta") == (
        "it points at http://127.0.0.2:8080"
    )
    assert fake.refusal("http://127.0.0.1:8081/v1.0/users/delta") is not None


def test_a_url_is_shown_without_its_query_or_user_information() -> None:
    url = "https://user:pw@graph.microsoft.com/v1.0/users/delta?$deltatoken=SECRET#frag"
    assert shown(url) == "https://graph.microsoft.com/v1.0/users/delta"
    assert shown("https://x.example:8443/scim/v2?token=1") == "https://x.example:8443/scim/v2"
    assert shown("https://x.example/\ud800") == "a malformed URL"


@pytest.mark.parametrize(
    ("url", "proxy", "expected"),
    [
        ("http://127.0.0.1:8080/scim/v2", None, False),
        ("https://learnster.example/scim/v2", None, True),
        ("http://127.0.0.1:8080/v1.0", "https://proxy.example:3128", True),
        ("http://127.0.0.1:8080/v1.0", "http://proxy.example:3128", False),
    ],
)
def test_only_https_or_an_https_proxy_speaks_tls(
    url: str, proxy: str | None, expected: bool
) -> None:
    assert speaks_tls(url, proxy) is expected


def test_a_context_for_plain_http_trusts_nothing_and_still_checks_a_ca_file(
    tmp_path: Path,
) -> None:
    unused = tls_verify("", used=False)
    assert unused.verify_mode == ssl.CERT_REQUIRED
    assert unused.check_hostname
    assert unused.cert_store_stats()["x509_ca"] == 0  # any TLS through it fails closed
    assert tls_verify("").cert_store_stats()["x509_ca"] > 0
    with pytest.raises(ConfigError, match="cannot be loaded"):
        tls_verify(str(tmp_path / "missing.pem"), used=False)
