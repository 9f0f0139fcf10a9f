"""Which links stay on Graph's origin, and how a URL is shown in a message."""

from __future__ import annotations

import pytest

from syncd.adapters.origin import Origin, shown

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
