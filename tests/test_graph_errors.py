"""A failed Graph read says what failed: a Graph error with its status and code, or credentials,
permissions, connection; in the exit code, the log, `status`, the e-mail and the health state."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from syncd.adapters.sqlite import Store
from syncd.app.cli import main
from syncd.errors import ExitCode, Health
from tests.conftest import Harness, Mailbox


@dataclass(frozen=True)
class Case:
    status: int | None  # None: Graph cannot be reached at all
    code: str
    health: Health
    says: str  # in the cycle's message, the status, the e-mail and the log
    subject: str


CASES = [
    Case(
        400,
        "Request_BadRequest",
        Health.GRAPH,
        "HTTP 400 Request_BadRequest: Injected failure of page 1.",
        "Microsoft Graph answered the read with an error",
    ),
    Case(
        404,
        "Request_ResourceNotFound",
        Health.GRAPH,
        "HTTP 404 Request_ResourceNotFound",
        "Microsoft Graph answered the read with an error",
    ),
    Case(
        500,
        "generalException",
        Health.GRAPH,
        "HTTP 500 generalException",
        "Microsoft Graph answered the read with an error",
    ),
    Case(
        401,
        "InvalidAuthenticationToken",
        Health.CREDENTIALS,
        "Graph refused the token for users/delta page 1 (401 InvalidAuthenticationToken)",
        "authentication or connection failure: credentials refused",
    ),
    Case(
        403,
        "Authorization_RequestDenied",
        Health.PERMISSIONS,
        "(403 Authorization_RequestDenied): the app registration needs the application "
        "permission User.Read.All",
        "authentication or connection failure: a permission is missing",
    ),
    Case(
        None,
        "",
        Health.CONNECTION,
        "cannot reach Microsoft Graph at",
        "authentication or connection failure: cannot connect",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[str(c.status or "connection") for c in CASES])
def test_a_failed_graph_read_is_reported_as_what_it_was(
    case: Case,
    make_harness: Callable[..., Harness],
    mailbox: tuple[Mailbox, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    box, port = mailbox
    h = make_harness(users=10)
    h.reconfigure(
        f'[notify]\nemail_to = ["ops@example.org"]\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\n'
    )
    assert main(["sync", "--config", str(h.config_path)]) == ExitCode.OK
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.update_user(user["id"], jobTitle="Read this")
    if case.status is None:
        h.graph.stop()
    else:
        h.graph.fail_page("/users/delta", 1, status=case.status, times=None, code=case.code)
    capsys.readouterr()

    assert main(["sync", "--config", str(h.config_path)]) == ExitCode.AUTH
    out, err = capsys.readouterr()
    assert case.says in out
    if case.status is None:  # the URL that failed, not the configured one, and no delta token
        assert f"{h.graph.base_url}/users/delta: ConnectError" in out
        assert "deltatoken" not in out + err

    store = Store(h.config.state_database)
    try:
        health = store.runs.health()
        [last, *_] = store.runs.recent(1)
    finally:
        store.close()
    assert health is not None
    assert health["state"] == case.health
    assert case.says in health["message"]
    assert last.exit_code == ExitCode.AUTH
    assert case.says in last.message

    logged = [line for line in err.splitlines() if "health is now" in line]
    assert len(logged) == 1
    assert logged[0].endswith(f"health is now {case.health} (was ok): {health['message']}")

    assert main(["status", "--json", "--config", str(h.config_path)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["health"]["state"] == case.health
    assert case.says in status["health"]["message"]
    assert main(["status", "--config", str(h.config_path)]) == 0
    assert f"health: {case.health} since" in capsys.readouterr().out

    [mail] = box.messages
    assert case.subject in mail["Subject"]
    body = " ".join(mail.get_payload(decode=True).decode().split())
    assert case.says in body
    if case.health is Health.GRAPH:
        assert "authentication" not in mail["Subject"]
        assert "this is not a credentials problem" in body
        assert "Nothing was deactivated or deleted" in body
    else:
        assert "Diagnose with: syncd check" in body
    assert h.learnster.users  # nothing was removed from the first cycle's users


def test_a_graph_error_during_provision_exits_4_and_says_so(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = make_harness(users=10)
    assert h.sync().exit_code == ExitCode.OK
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.fail_page(f"/users/{user['id']}/memberOf", 1, status=500, times=None)
    capsys.readouterr()
    code = main(["provision", user["userPrincipalName"], "--config", str(h.config_path)])
    assert code == ExitCode.AUTH
    out = capsys.readouterr().out
    assert "HTTP 500 generalException" in out
    assert "Microsoft Graph answered the read with an error" in out
