"""`syncd check`: a clear message for each way the set-up can be wrong (issue 4)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.app.cli import main
from syncd.errors import ExitCode
from syncd.fakes.generator import generate_organisation
from syncd.fakes.graph import FakeGraph
from syncd.fakes.learnster import FakeLearnster
from tests.conftest import write_config

SECRET = "correct-horse-battery"
TOKEN = "learnster-secret-token"


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeGraph, FakeLearnster]]:
    monkeypatch.setenv("SYNCD_GRAPH_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("SYNCD_LEARNSTER_TOKEN", TOKEN)
    with (
        FakeGraph(generate_organisation(10, seed=2), tls=True, client_secret=SECRET) as graph,
        FakeLearnster(token=TOKEN) as learnster,
    ):
        yield graph, learnster


def run_check(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["check", "--config", str(config)])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert SECRET not in output
    assert TOKEN not in output
    return code, " ".join(output.split())


def configure(tmp_path: Path, graph: FakeGraph, learnster: FakeLearnster, **edits: str) -> Path:
    path = write_config(tmp_path, graph, learnster, auth="client_secret")
    text = path.read_text()
    for old, new in edits.items():
        text = text.replace(old, new)
    path.write_text(text)
    return path


def test_check_passes_on_a_correct_setup(
    fakes: tuple[FakeGraph, FakeLearnster], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph, learnster = fakes
    code, out = run_check(configure(tmp_path, graph, learnster), capsys)
    assert code == 0, out
    assert "Graph: token acquired, read user" in out
    assert f"Learnster: {learnster.base_url} answered the test query" in out
    probe = [r for r in learnster.requests if r.method == "GET"]
    assert len(probe) == 1
    assert probe[0].query["filter"].startswith('userName eq "')
    assert probe[0].status == 200


def test_wrong_tenant_id(
    fakes: tuple[FakeGraph, FakeLearnster], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph, learnster = fakes
    config = configure(tmp_path, graph, learnster, **{graph.tenant_id: "contoso-typo.example"})
    code, out = run_check(config, capsys)
    assert code == ExitCode.AUTH
    assert "tenant 'contoso-typo.example' does not exist" in out
    assert "check [graph] tenant_id" in out


def test_wrong_client_id(
    fakes: tuple[FakeGraph, FakeLearnster], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph, learnster = fakes
    wrong = "22222222-2222-2222-2222-222222222222"
    code, out = run_check(configure(tmp_path, graph, learnster, **{graph.client_id: wrong}), capsys)
    assert code == ExitCode.AUTH
    assert f"application {wrong} is not registered" in out


def test_wrong_client_secret(
    fakes: tuple[FakeGraph, FakeLearnster],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    graph, learnster = fakes
    monkeypatch.setenv("SYNCD_GRAPH_CLIENT_SECRET", "not-the-secret")
    code, out = run_check(configure(tmp_path, graph, learnster), capsys)
    assert code == ExitCode.AUTH
    assert "the client secret is wrong" in out
    assert "AADSTS7000215" in out
    assert "not-the-secret" not in out


@pytest.mark.parametrize(
    ("granted", "missing"),
    [({"GroupMember.Read.All"}, "User.Read.All"), ({"User.Read.All"}, "GroupMember.Read.All")],
)
def test_missing_graph_permission_is_named(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    granted: set[str],
    missing: str,
) -> None:
    monkeypatch.setenv("SYNCD_GRAPH_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("SYNCD_LEARNSTER_TOKEN", TOKEN)
    with (
        FakeGraph(
            generate_organisation(5, seed=2), tls=True, client_secret=SECRET, permissions=granted
        ) as graph,
        FakeLearnster(token=TOKEN) as learnster,
    ):
        code, out = run_check(configure(tmp_path, graph, learnster), capsys)
    assert code == ExitCode.AUTH
    assert f"needs the application permission {missing} with admin consent" in out


def test_wrong_tenant_url(
    fakes: tuple[FakeGraph, FakeLearnster], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph, learnster = fakes
    wrong = learnster.base_url.replace("/scim/v2", "/scim/v3")
    code, out = run_check(
        configure(tmp_path, graph, learnster, **{learnster.base_url: wrong}), capsys
    )
    assert code == ExitCode.AUTH
    assert f"Learnster has no SCIM endpoint at {wrong} (404): check the Tenant URL" in out


def test_unreachable_tenant_url(
    fakes: tuple[FakeGraph, FakeLearnster], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph, learnster = fakes
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    wrong = f"http://127.0.0.1:{free_port}/scim/v2"
    code, out = run_check(
        configure(tmp_path, graph, learnster, **{learnster.base_url: wrong}), capsys
    )
    assert code == ExitCode.AUTH
    assert f"cannot reach Learnster at {wrong}" in out


def test_wrong_secret_token(
    fakes: tuple[FakeGraph, FakeLearnster],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    graph, learnster = fakes
    monkeypatch.setenv("SYNCD_LEARNSTER_TOKEN", "not-the-token")
    code, out = run_check(configure(tmp_path, graph, learnster), capsys)
    assert code == ExitCode.AUTH
    assert "the Secret Token is wrong or expired" in out
    assert "not-the-token" not in out


def test_check_reads_the_assignments_and_names_the_permission_they_need(
    fakes: tuple[FakeGraph, FakeLearnster], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from syncd.fakes.graph.apps import LEARNSTER_APP_ID

    graph, learnster = fakes
    graph.add_learnster_app(assign_groups=2, assign_users=3)
    config = configure(tmp_path, graph, learnster)
    with config.open("a") as file:
        file.write(f'\n[scope]\nmode = "assigned"\napplication = "{LEARNSTER_APP_ID}"\n')
    code, out = run_check(config, capsys)
    assert code == ExitCode.AUTH
    assert (
        "✗ Graph denied the Learnster app's service principal (403 Authorization_RequestDenied): "
        "the app registration needs the application permission Application.Read.All with admin "
        "consent" in out
    )
    graph.permissions.add("Application.Read.All")
    code, out = run_check(config, capsys)
    assert code == 0, out
    assert "Graph: the Learnster app's assignments readable (3 users and 2 groups assigned)" in out
    config.write_text(
        config.read_text().replace(LEARNSTER_APP_ID, "00000000-0000-0000-0000-000000000001")
    )
    code, out = run_check(config, capsys)
    assert code == ExitCode.USAGE
    assert "the tenant has no enterprise application (service principal) with that" in out
