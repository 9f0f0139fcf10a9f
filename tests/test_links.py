"""Links stay home: a Graph page whose nextLink or deltaLink points elsewhere is refused.

A stranger on another loopback address (127.0.0.2), trusted by syncd's TLS settings and
answering like Graph, records whatever reaches it: only syncd's own checks keep it empty.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from syncd.adapters.sqlite import Store
from syncd.config import load_config
from syncd.errors import ExitCode, Health
from syncd.fakes._http import LoopbackServer, Request, Response
from syncd.fakes.certificates import make_client_certificate
from syncd.fakes.generator import generate_organisation
from syncd.fakes.graph import FakeGraph
from syncd.fakes.learnster import FakeLearnster
from tests.conftest import GRAPH_TOKEN, LEARNSTER_TOKEN, Harness, write_config
from tests.test_sync_e2e import assert_learnster_matches_directory

CLIENT_SECRET = "links-client-secret"
AUTH_MODES = ["access_token", "client_secret", "certificate"]  # the modes that run offline


@dataclass
class Stranger:
    """A server that is not Graph: it records every request and answers an empty delta page."""

    server: LoopbackServer | None = None
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, request: Request) -> Response:
        with self.lock:
            self.requests.append(request)
        origin = self.origin
        return Response.json(
            {"value": [], "@odata.deltaLink": f"{origin}/v1.0/users/delta?$deltatoken=stranger"}
        )

    @property
    def origin(self) -> str:
        assert self.server is not None
        return self.server.origin

    def saw_secret(self, *secrets: str) -> bool:
        """Whether any request carried one of ``secrets`` (path, query, headers or body)."""
        with self.lock:
            seen = [
                f"{r.path} {json.dumps(r.query)} {json.dumps(r.headers)} ".encode() + r.body
                for r in self.requests
            ]
        return any(secret.encode() in text for secret in secrets for text in seen)


@pytest.fixture
def tenant(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Harness, Stranger]]:
    """A TLS Graph signed in to with ``request.param`` (an auth mode), Learnster, a stranger."""
    auth = request.param
    monkeypatch.setenv("SYNCD_GRAPH_ACCESS_TOKEN", GRAPH_TOKEN)
    monkeypatch.setenv("SYNCD_GRAPH_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("SYNCD_LEARNSTER_TOKEN", LEARNSTER_TOKEN)
    org = generate_organisation(36, seed=21)
    certificate = make_client_certificate("syncd")
    graph = FakeGraph(
        org,
        tls=True,
        access_token=GRAPH_TOKEN,
        client_secret=CLIENT_SECRET,
        client_certificate=certificate.certificate_pem,
        page_size_max=10,
    ).start()
    learnster = FakeLearnster(token=LEARNSTER_TOKEN).start()
    stranger = Stranger()
    stranger.server = LoopbackServer(
        stranger.answer, host="127.0.0.2", ssl_context=graph.ssl_context
    )
    stranger.server.start()
    pem = tmp_path / "graph.pem"
    certificate.write(pem)
    path = write_config(tmp_path, graph, learnster, auth=auth, certificate_path=pem)
    try:
        yield Harness(graph, learnster, path, load_config(str(path))), stranger
    finally:
        stranger.server.stop()
        learnster.stop()
        graph.stop()


def stored_links(h: Harness) -> dict[str, str]:
    store = Store(h.config.state_database)
    try:
        return store.snapshot.delta_links()
    finally:
        store.close()


def removals(h: Harness) -> list[str]:
    """Learnster requests that remove someone: a DELETE, or a PATCH that sets active false."""
    found = []
    for r in h.scim_requests():
        body = json.dumps(r.body)
        if r.method == "DELETE" or (r.method == "PATCH" and '"active", "value": false' in body):
            found.append(f"{r.method} {r.path}")
    return found


def assert_converged_without(h: Harness, leaver: str) -> None:
    """Learnster equals the mapping of the directory, the disabled ``leaver`` deactivated."""
    resource = h.learnster.user_by_username(leaver)
    assert resource is not None
    assert resource["active"] is False
    assert_learnster_matches_directory(h, extra_users=1)  # the leaver, kept inactive


def graph_secrets(h: Harness) -> list[str]:
    """What must never reach the stranger: the static token, the client secret, issued tokens,
    and the certificate's private key."""
    key = Path(h.config.graph.certificate_path).read_text().split("-----")[2].strip()
    return [GRAPH_TOKEN, CLIENT_SECRET, *h.graph.issued_tokens, key[:64]]


@pytest.mark.parametrize("tenant", AUTH_MODES, indirect=True)
@pytest.mark.parametrize("resource", ["users", "groups"])
def test_a_next_link_to_another_host_is_refused_and_nothing_is_removed(
    tenant: tuple[Harness, Stranger], resource: str, caplog: pytest.LogCaptureFixture
) -> None:
    h, stranger = tenant
    assert h.sync().exit_code == ExitCode.OK
    links_before = stored_links(h)
    leaver = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.disable_user(leaver["id"])
    h.learnster.clear_requests()

    # A full read in pages of 10 (36 users, 15 groups): a page's nextLink moved to the stranger.
    h.graph.tamper_links(resource, "next", stranger.origin, page=2 if resource == "users" else 1)
    with caplog.at_level(logging.INFO):
        report = h.sync(full=True)

    assert report.exit_code == ExitCode.AUTH
    assert report.health == Health.GRAPH
    assert stranger.requests == []
    assert removals(h) == []  # the leaver stays until a read completes
    # The refused round keeps its old link; the other round completed and moved on honestly.
    after = stored_links(h)
    assert after[resource] == links_before[resource]
    assert all("127.0.0.2" not in link for link in after.values())
    host = stranger.origin.removeprefix("https://")
    assert f"points at https://{host}" in report.message
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("syncd"))
    assert host in logged
    assert "skiptoken" not in logged
    assert GRAPH_TOKEN not in logged

    h.learnster.clear_requests()
    honest = h.sync()
    assert honest.exit_code == ExitCode.OK, honest.message
    assert removals(h) == [
        f"PATCH /Users/{h.learnster.user_by_username(leaver['userPrincipalName'])['id']}"
    ]
    assert_converged_without(h, leaver["userPrincipalName"])
    assert all("127.0.0.2" not in link for link in stored_links(h).values())
    assert not stranger.saw_secret(*graph_secrets(h))
    if h.config.graph.auth != "access_token":  # signed in through the fake's token endpoint
        assert h.graph.issued_tokens


@pytest.mark.parametrize("tenant", AUTH_MODES, indirect=True)
@pytest.mark.parametrize("resource", ["users", "groups"])
def test_a_delta_link_to_another_host_is_not_stored(
    tenant: tuple[Harness, Stranger], resource: str
) -> None:
    h, stranger = tenant
    assert h.sync().exit_code == ExitCode.OK
    links_before = stored_links(h)
    leaver = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.disable_user(leaver["id"])
    h.learnster.clear_requests()

    h.graph.tamper_links(resource, "delta", stranger.origin, page=1)
    report = h.sync()

    assert report.exit_code == ExitCode.AUTH
    assert "deltaLink" in report.message
    assert "127.0.0.2" in report.message
    after = stored_links(h)
    assert after[resource] == links_before[resource]
    assert all("127.0.0.2" not in link for link in after.values())
    assert removals(h) == []
    assert stranger.requests == []

    # Two honest cycles: the stored link is Graph's, and the stranger never hears of syncd.
    assert h.sync().exit_code == ExitCode.OK
    assert h.sync().exit_code == ExitCode.OK
    assert_converged_without(h, leaver["userPrincipalName"])
    assert stranger.requests == []


@pytest.mark.parametrize("tenant", ["access_token"], indirect=True)
def test_a_stored_delta_link_elsewhere_is_never_followed(
    tenant: tuple[Harness, Stranger], caplog: pytest.LogCaptureFixture
) -> None:
    """The state an older syncd left after following a tampered page: the stranger's deltaLink
    stored for users. It is not used; everything is read again from Graph, and converges."""
    h, stranger = tenant
    assert h.sync().exit_code == ExitCode.OK
    store = Store(h.config.state_database)
    try:
        store.snapshot.save_delta_links(
            {"users": f"{stranger.origin}/v1.0/users/delta?$deltatoken=stolen"}
        )
    finally:
        store.close()
    leaver = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.disable_user(leaver["id"])

    with caplog.at_level(logging.WARNING, logger="syncd"):
        report = h.sync()

    assert report.exit_code == ExitCode.OK, report.message
    assert report.mode == "full"
    assert stranger.requests == []
    assert f"it points at {stranger.origin}" in caplog.text
    assert "stolen" not in caplog.text
    assert all("127.0.0.2" not in link for link in stored_links(h).values())
    assert_converged_without(h, leaver["userPrincipalName"])
