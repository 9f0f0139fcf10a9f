"""Answers no honest server gives, from Graph's side and Learnster's, through a proxy.

Each: the exit code, the message that names what was wrong, nothing removed on a Graph read
that did not complete, nothing created twice, and the next honest cycle converges.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.adapters.sqlite import Store
from syncd.config import load_config
from syncd.errors import ExitCode, Health
from syncd.fakes._http import LoopbackServer, Request, Response
from syncd.fakes.generator import generate_organisation
from syncd.fakes.graph import FakeGraph
from syncd.fakes.learnster import FakeLearnster
from tests.conftest import GRAPH_TOKEN, LEARNSTER_TOKEN, Harness, write_config
from tests.garbage_proxy import GarbageProxy, Garble, body, html_page, truncated
from tests.test_sync_e2e import assert_learnster_matches_directory

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
FIFTY_MB = 50 * 1024 * 1024


def fifty_megabytes(_real: Response | None) -> Response:
    padding = b" " * FIFTY_MB
    return Response(200, b'{"value": [' + padding + b"]}", {"Content-Type": "application/json"})


def gzip_bomb(_real: Response | None) -> Response:
    """A few dozen kilobytes on the wire that inflate to 60 MB."""
    inflated = b'{"value": [' + b" " * (60 * 1024 * 1024) + b"]}"
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    return Response(200, gzip.compress(inflated, 9), headers)


class Proxied:
    """Fake Graph and fake Learnster, each behind a garbage proxy syncd is configured with."""

    def __init__(self, tmp_path: Path, users: int = 30) -> None:
        self.graph = FakeGraph(generate_organisation(users, seed=33), access_token=GRAPH_TOKEN)
        self.learnster = FakeLearnster(token=LEARNSTER_TOKEN)
        self.graph.start()
        self.learnster.start()
        self.graph_proxy = GarbageProxy(self.graph.origin).start()
        self.learnster_proxy = GarbageProxy(self.learnster.base_url.split("/scim")[0]).start()
        path = write_config(tmp_path, self.graph, self.learnster)
        text = path.read_text()
        text = text.replace(self.graph.origin, self.graph_proxy.origin)
        text = text.replace(self.learnster.base_url, self.learnster_proxy.origin + "/scim/v2")
        path.write_text(text)
        self.h = Harness(self.graph, self.learnster, path, load_config(str(path)))

    def stop(self) -> None:
        for server in (self.graph_proxy, self.learnster_proxy, self.learnster, self.graph):
            server.stop()


@pytest.fixture
def proxied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Proxied]:
    monkeypatch.setenv("SYNCD_GRAPH_ACCESS_TOKEN", GRAPH_TOKEN)
    monkeypatch.setenv("SYNCD_LEARNSTER_TOKEN", LEARNSTER_TOKEN)
    tenants = Proxied(tmp_path)
    try:
        yield tenants
    finally:
        tenants.stop()


def removals(h: Harness) -> list[str]:
    return [
        f"{r.method} {r.path}"
        for r in h.scim_requests()
        if r.method == "DELETE"
        or (r.method == "PATCH" and '"active", "value": false' in json.dumps(r.body))
    ]


def users_link(h: Harness) -> str | None:
    store = Store(h.config.state_database)
    try:
        return store.snapshot.delta_links().get("users")
    finally:
        store.close()


GRAPH_GARBAGE: list[tuple[str, Garble, bool, str]] = [
    ("proxy error page", html_page(502), False, "HTTP 502"),
    (
        "proxy login page",
        body(200, b"<html><body>Sign in to the proxy</body></html>", "text/html"),
        False,
        "is not JSON",
    ),
    ("truncated JSON", truncated, True, "is not JSON"),
    ("not an object", body(200, b"[1, 2, 3]"), False, "an unexpected page"),
    ("value not a list", body(200, b'{"value": {"id": "x"}}'), False, "without a value list"),
    ("50 MB", fifty_megabytes, False, "larger than 33,554,432 bytes"),
    ("gzip bomb", gzip_bomb, False, "larger than 33,554,432 bytes"),
]


@pytest.mark.parametrize(
    ("garble", "upstream", "expected"),
    [case[1:] for case in GRAPH_GARBAGE],
    ids=[case[0] for case in GRAPH_GARBAGE],
)
def test_a_garbage_graph_page_fails_the_read_and_removes_nobody(
    proxied: Proxied, garble: Garble, upstream: bool, expected: str
) -> None:
    h = proxied.h
    assert h.sync().exit_code == ExitCode.OK
    link = users_link(h)
    leaver = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.disable_user(leaver["id"])
    h.learnster.clear_requests()
    proxied.graph_proxy.arm("GET", "/users/delta", garble, upstream=upstream)

    report = h.sync()

    assert proxied.graph_proxy.served, "the garbage was not served"
    assert report.exit_code == ExitCode.AUTH
    assert report.health == Health.GRAPH
    assert expected in report.message
    assert "users/delta page 1" in report.message
    assert "deltatoken" not in report.message
    assert removals(h) == []
    assert users_link(h) == link

    honest = h.sync()
    assert honest.exit_code == ExitCode.OK, honest.message
    resource = h.learnster.user_by_username(leaver["userPrincipalName"])
    assert resource is not None
    assert resource["active"] is False


def test_a_page_that_repeats_the_previous_pages_link_ends_the_read(proxied: Proxied) -> None:
    h = proxied.h
    assert h.sync().exit_code == ExitCode.OK
    leaver = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.disable_user(leaver["id"])
    h.learnster.clear_requests()
    h.graph.tamper_links("users", "loop", page=1, times=None)
    asked_before = len(h.graph.requests)

    report = h.sync(full=True)

    assert report.exit_code == ExitCode.AUTH
    assert "repeats the nextLink of an earlier page" in report.message
    users_pages = [r for r in h.graph.requests[asked_before:] if "/users/delta" in r.path]
    assert len(users_pages) == 2  # the page, then once more by its own link: not a third time
    assert removals(h) == []
    h.graph.clear_faults()
    assert h.sync().exit_code == ExitCode.OK


def _first_post(proxied: Proxied, garble: Garble, *, upstream: bool) -> Any:
    """The initial cycle, its first POST /Users answered with garbage."""
    proxied.learnster_proxy.arm("POST", "/Users", garble, upstream=upstream)
    report = proxied.h.sync()
    assert proxied.learnster_proxy.served == ["POST /scim/v2/Users"]
    return report


LEARNSTER_GARBAGE: list[tuple[str, Garble, bool, str]] = [
    ("proxy error page", html_page(400), False, "not Learnster's SCIM: an HTML page titled '400'"),
    ("201 without id", body(201, b'{"userName": "x"}'), True, "reply has no resource id"),
    ("not an object", body(201, b'["id"]'), True, "reply has no resource id"),
    ("truncated JSON", truncated, True, "answered 201 without JSON"),
    ("50 MB", fifty_megabytes, True, "larger than 33,554,432 bytes"),
]


@pytest.mark.parametrize(
    ("garble", "upstream", "expected"),
    [case[1:] for case in LEARNSTER_GARBAGE],
    ids=[case[0] for case in LEARNSTER_GARBAGE],
)
def test_a_garbage_learnster_answer_fails_that_user_only(
    proxied: Proxied, garble: Garble, upstream: bool, expected: str
) -> None:
    h = proxied.h
    report = _first_post(proxied, garble, upstream=upstream)

    assert report.exit_code == ExitCode.PARTIAL
    assert len(report.failures) == 1
    assert expected in report.failures[0].error

    # Past the escrow's backoff: created behind the garbage or not, matched, never made twice.
    again = h.sync(now=datetime.now(UTC) + timedelta(minutes=6))
    assert again.exit_code == ExitCode.OK, again.failures
    assert_learnster_matches_directory(h)


def test_a_proxy_error_page_once_is_retried(proxied: Proxied) -> None:
    report = _first_post(proxied, html_page(502), upstream=False)
    assert report.exit_code == ExitCode.OK, report.failures
    assert_learnster_matches_directory(proxied.h)


def test_a_redirect_is_not_followed_and_the_secret_token_stays(proxied: Proxied) -> None:
    seen: list[Request] = []
    lock = threading.Lock()

    def record(request: Request) -> Response:
        with lock:
            seen.append(request)
        return Response.json({"id": "elsewhere"}, 201)

    stranger = LoopbackServer(record, host="127.0.0.2")
    stranger.start()
    try:
        location = f"{stranger.origin}/scim/v2/Users"
        redirect = body(307, b"")
        report = _first_post(
            proxied,
            lambda real: Response(307, b"", {**redirect(real).headers, "Location": location}),
            upstream=False,
        )
        assert report.exit_code == ExitCode.PARTIAL
        (failure,) = report.failures
        assert f"a redirect to 127.0.0.2:{stranger.port}: not followed" in failure.error
        assert seen == []
        assert proxied.h.sync().exit_code == ExitCode.OK
        assert seen == []
    finally:
        stranger.stop()


def test_meta_location_elsewhere_is_never_used(proxied: Proxied) -> None:
    """Learnster's meta.location (and a manager's $ref) naming another host: syncd addresses
    resources by its own tenant_url and their ids only."""
    h = proxied.h
    proxied.learnster.base_url = "http://127.0.0.2:9/scim/v2"  # what its answers now claim
    assert h.sync().exit_code == ExitCode.OK
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.update_user(user["id"], jobTitle="Moved")
    assert h.sync().exit_code == ExitCode.OK
    resource = h.learnster.user_by_username(user["userPrincipalName"])
    assert resource is not None
    assert resource["title"] == "Moved"
    assert resource["meta"]["location"].startswith("http://127.0.0.2:9/")


def test_a_huge_answer_to_a_patch_is_dropped_unread_and_fails_that_user(proxied: Proxied) -> None:
    """PATCH answers are not used: they are drained chunk by chunk, and still bounded."""
    h = proxied.h
    assert h.sync().exit_code == ExitCode.OK
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.update_user(user["id"], jobTitle="Moved")
    proxied.learnster_proxy.arm("PATCH", "/Users/", fifty_megabytes, upstream=True)
    report = h.sync()
    assert report.exit_code == ExitCode.PARTIAL
    (failure,) = report.failures
    assert "PATCH /Users/" in failure.error
    assert "larger than 33,554,432 bytes" in failure.error
    again = h.sync(now=datetime.now(UTC) + timedelta(minutes=6))
    assert again.exit_code == ExitCode.OK, again.failures
    assert_learnster_matches_directory(h)


LIST_GARBAGE: list[tuple[str, Garble, bool, str]] = [
    ("not an object", body(200, b"[]"), False, "list reply is not a ListResponse"),
    (
        "Resources not a list",
        body(200, b'{"totalResults": 1, "Resources": {"id": "x"}}'),
        False,
        "Resources is not a list",
    ),
    ("truncated JSON", truncated, True, "list reply is not JSON"),
    ("proxy error page", html_page(400), False, "HTTP 400"),
]


@pytest.mark.parametrize(
    ("garble", "upstream", "expected"),
    [case[1:] for case in LIST_GARBAGE],
    ids=[case[0] for case in LIST_GARBAGE],
)
def test_a_garbage_list_of_learnster_users_creates_nobody(
    proxied: Proxied, garble: Garble, upstream: bool, expected: str
) -> None:
    """Takeover: Learnster already holds the users (Entra pushed them). A list that cannot be
    read must not look like an empty Learnster: nobody is created, and the next cycle adopts."""
    h = proxied.h
    for user in h.graph.users:
        if user.get("accountEnabled"):
            h.learnster.add_user(
                {"schemas": [CORE], "userName": user["userPrincipalName"], "active": True}
            )
    before = len(h.learnster.users)
    proxied.learnster_proxy.arm("GET", "/Users", garble, upstream=upstream)

    report = h.sync()

    assert proxied.learnster_proxy.served
    assert report.exit_code != ExitCode.OK
    assert expected in report.message + " ".join(f.error for f in report.failures)
    assert [r for r in h.scim_requests() if r.method == "POST"] == []
    assert len(h.learnster.users) == before

    assert h.sync().exit_code == ExitCode.OK
    assert len(h.learnster.users) == before
    assert_learnster_matches_directory(h)


def test_a_total_that_lies_still_adopts_everyone(proxied: Proxied) -> None:
    """Pages of 7 (Learnster's own page size) whose totalResults claims the list has 1."""
    h = proxied.h
    proxied.learnster.page_size_max = 7
    for user in h.graph.users:
        if user.get("accountEnabled"):
            h.learnster.add_user(
                {"schemas": [CORE], "userName": user["userPrincipalName"], "active": True}
            )
    before = len(h.learnster.users)

    def claims_one(real: Response | None) -> Response:
        assert real is not None
        page = json.loads(real.body)
        page["totalResults"] = 1
        return Response(real.status, json.dumps(page).encode(), real.headers)

    proxied.learnster_proxy.arm("GET", "/Users", claims_one, upstream=True, times=None)
    report = h.sync()
    assert report.exit_code == ExitCode.OK, report.failures
    assert [r for r in h.scim_requests() if r.method == "POST" and r.path == "/Users"] == []
    assert report.outcomes["create_user"]["adopted"] == before
    assert len(h.learnster.users) == before
