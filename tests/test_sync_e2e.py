"""Whole cycles over loopback HTTP: fake Graph -> syncd -> fake Learnster (issue 2's "must show")."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
import pytest

from syncd.adapters.sqlite import Store
from syncd.app.cli import main
from syncd.errors import ExitCode
from syncd.fakes.generator import generate_organisation
from tests.conftest import Harness

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
REGIONS = {
    "Sweden": "SE",
    "Norway": "NO",
    "Denmark": "DK",
    "Finland": "FI",
    "United Kingdom": "GB",
    "United States": "US",
    "Germany": "DE",
}


def expected_phone(raw: str | None, user: dict[str, Any]) -> str | None:
    """E.164 as Learnster must receive it, computed independently of syncd's mapping."""
    if not raw:
        return None
    country = user.get("usageLocation") or user.get("country") or ""
    region = country if len(country) == 2 else REGIONS.get(country, "SE")
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def element(resource: dict[str, Any], attr: str, type_: str) -> dict[str, Any]:
    return next((e for e in resource.get(attr, []) if e.get("type") == type_), {})


def assert_user_matches(
    graph_user: dict[str, Any], resource: dict[str, Any], *, adopted: bool = False
) -> None:
    """Field by field, Learnster's documented mapping table (syncd.core.mapping).

    ``adopted``: attributes Graph has no value for are left as Learnster held them.
    """
    upn = user_name_of(graph_user)
    assert resource["userName"] == upn
    assert resource["active"] is True

    def check(actual: Any, graph_value: Any, what: str) -> None:
        expected = graph_value.strip() if isinstance(graph_value, str) else graph_value
        if adopted and not expected:
            return
        assert actual == (expected or None), f"{upn}: {what}"

    check(resource.get("displayName"), graph_user.get("displayName"), "displayName")
    check(resource.get("title"), graph_user.get("jobTitle"), "title")
    check(resource.get("externalId"), graph_user.get("mailNickname"), "externalId")
    check(element(resource, "emails", "work").get("value"), graph_user.get("mail"), "work email")
    name = resource.get("name", {})
    check(name.get("givenName"), graph_user.get("givenName"), "givenName")
    check(name.get("familyName"), graph_user.get("surname"), "familyName")
    formatted = " ".join(
        p.strip()
        for p in (graph_user.get("givenName"), graph_user.get("surname"))
        if p and p.strip()
    )
    check(name.get("formatted"), formatted, "name.formatted")
    address = element(resource, "addresses", "work")
    check(address.get("formatted"), graph_user.get("officeLocation"), "office")
    check(address.get("streetAddress"), graph_user.get("streetAddress"), "street")
    check(address.get("locality"), graph_user.get("city"), "city")
    check(address.get("postalCode"), graph_user.get("postalCode"), "postal code")
    check(address.get("country"), graph_user.get("country"), "country")
    check(
        resource.get(ENTERPRISE, {}).get("organization"), graph_user.get("companyName"), "company"
    )
    work = expected_phone((graph_user.get("businessPhones") or [None])[0], graph_user)
    mobile = expected_phone(graph_user.get("mobilePhone"), graph_user)
    first = work or mobile  # Learnster keeps only the first number sent: work before mobile
    phones = resource.get("phoneNumbers", [])
    assert [p["value"] for p in phones] == ([first] if first else []), f"{upn}: phone"


def assert_learnster_matches_directory(h: Harness, *, extra_users: int = 0) -> None:
    """Learnster holds every enabled directory user as the mapping says, with its manager, and
    every group as a tag of its direct user members. ``extra_users``: Learnster users that are
    no directory user (hand-made ones syncd must leave alone)."""
    graph_users = {u["id"]: u for u in h.graph.users}
    enabled = {uid: u for uid, u in graph_users.items() if u.get("accountEnabled", True)}
    by_name = {u["userName"].lower(): u for u in h.learnster.users.values()}
    # disabled and never synced: not created
    assert len(h.learnster.users) == len(enabled) + extra_users
    for uid, user in enabled.items():
        resource = by_name[user_name_of(user).lower()]
        assert_user_matches(user, resource)
        manager = h.graph.manager_of(uid)
        sent_manager = resource.get(ENTERPRISE, {}).get("manager", {}).get("value")
        if manager and manager in enabled:
            expected = by_name[user_name_of(graph_users[manager]).lower()]["id"]
            assert sent_manager == expected, user["userPrincipalName"]
        else:
            assert sent_manager is None

    scim_id = {uid: by_name[user_name_of(u).lower()]["id"] for uid, u in enabled.items()}
    for group in h.graph.groups:
        tag = h.learnster.group_by_external_id(group["id"])
        assert tag is not None, group["displayName"]
        assert tag["displayName"].startswith(group["displayName"])
        members = {m["value"] for m in tag.get("members", [])}
        direct_users = {m for m in h.graph.member_ids(group["id"]) if m in enabled}
        assert {scim_id[m] for m in direct_users} <= members, group["displayName"]
        assert len(members - set(scim_id.values())) <= extra_users, group["displayName"]
        assert members & set(scim_id.values()) == {scim_id[m] for m in direct_users}


def user_name_of(graph_user: dict[str, Any]) -> str:
    """The userName Learnster holds for a Graph user: the UPN, a guest's #EXT# removed."""
    return str(graph_user["userPrincipalName"]).replace("#EXT#", "")


@pytest.mark.slow
def test_500_user_tenant_is_provisioned_exactly_and_a_second_cycle_sends_nothing(
    make_harness: Callable[..., Harness],
) -> None:
    org = generate_organisation(500, seed=3)
    h = make_harness(org)
    report = h.sync()
    assert report.exit_code == ExitCode.OK, report.failures
    assert report.mode == "full"

    assert_learnster_matches_directory(h)

    # Managers rode in the POST: no manager PATCH was needed in a tree without cycles.
    patches = [r for r in h.scim_requests() if r.method == "PATCH" and r.path.startswith("/Users")]
    assert patches == []

    h.learnster.clear_requests()
    second = h.sync()
    assert second.exit_code == ExitCode.OK
    assert h.learnster.requests == []


def test_an_attribute_change_sends_exactly_one_patch_with_exactly_that_operation(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()
    h.sync()
    user = next(u for u in h.graph.users if u.get("accountEnabled") and u.get("jobTitle"))
    h.graph.update_user(user["id"], jobTitle="Chief Learning Officer")
    h.learnster.clear_requests()
    report = h.sync()
    assert report.mode == "delta"
    resource = h.learnster.user_by_username(user["userPrincipalName"])
    assert resource is not None
    [request] = h.scim_requests()
    assert (request.method, request.path) == ("PATCH", f"/Users/{resource['id']}")
    assert request.body == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": "Chief Learning Officer"}],
    }
    assert resource["title"] == "Chief Learning Officer"


def test_a_user_disabled_in_entra_gets_active_false(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    h.sync()
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.disable_user(user["id"])
    h.learnster.clear_requests()
    h.sync()
    [request] = h.scim_requests()
    assert request.body["Operations"] == [{"op": "replace", "path": "active", "value": False}]
    resource = h.learnster.user_by_username(user["userPrincipalName"])
    assert resource is not None
    assert resource["active"] is False


def test_a_preexisting_learnster_user_is_adopted_not_duplicated(
    make_harness: Callable[..., Harness],
) -> None:
    org = generate_organisation(30, seed=5)
    h = make_harness(org)
    user = next(u for u in org.users if u.get("accountEnabled") and u.get("jobTitle"))
    existing_id = h.learnster.add_user(
        {
            "userName": user["userPrincipalName"].upper(),
            "displayName": "Old Name",
            "title": "Old title",
            "nickName": "kept",  # not in the mapping: left as Learnster holds it
        }
    )
    report = h.sync()
    assert report.exit_code == ExitCode.OK
    assert report.outcomes["create_user"]["adopted"] == 1
    matches = [
        u
        for u in h.learnster.users.values()
        if u["userName"].lower() == user["userPrincipalName"].lower()
    ]
    assert [u["id"] for u in matches] == [existing_id]
    adopted = matches[0]
    assert adopted["userName"] == user["userPrincipalName"]  # exact case from Entra
    assert adopted["displayName"] == user["displayName"]
    assert adopted["title"] == user["jobTitle"]
    assert adopted["nickName"] == "kept"
    assert not [
        r
        for r in h.scim_requests()
        if r.method == "POST"
        and r.body.get("userName", "").lower() == user["userPrincipalName"].lower()
    ]


def test_an_invalid_phone_number_drops_only_that_number(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()
    uid = h.graph.add_user(
        {
            "userPrincipalName": "odd.phone@contoso.example",
            "displayName": "Odd Phone",
            "businessPhones": ["12"],
            "mobilePhone": "+46 70 123 45 67",
            "jobTitle": "Tester",
        }
    )
    report = h.sync()
    resource = h.learnster.user_by_username("odd.phone@contoso.example")
    assert resource is not None
    assert resource["phoneNumbers"] == [{"type": "mobile", "value": "+46701234567"}]
    assert resource["title"] == "Tester"
    warnings = [p for p in report.problems if p.object_id == uid]
    assert [(p.field, p.severity) for p in warnings] == [("businessPhones", "warning")]
    assert "'12'" in warnings[0].message


def test_a_user_without_upn_is_skipped_with_an_error_naming_the_object_id(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()
    uid = h.graph.add_user({"displayName": "No UPN", "userPrincipalName": "tmp@contoso.example"})
    h.graph.update_user(uid, userPrincipalName=None)
    report = h.sync()
    assert report.exit_code == ExitCode.OK
    errors = [p for p in report.problems if p.severity == "error"]
    assert [(p.object_id, p.field) for p in errors] == [(uid, "userPrincipalName")]
    assert uid in str(errors[0])
    assert not any(u.get("displayName") == "No UPN" for u in h.learnster.users.values())
    assert len(h.learnster.users) == sum(1 for u in h.graph.users if u.get("accountEnabled")) - 1


def test_a_learnster_400_for_one_user_leaves_the_others_applied_and_status_lists_it(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = make_harness()
    victim = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.learnster.reject(victim["userPrincipalName"], 400, detail="title contains a forbidden word")
    report = h.sync()
    assert report.exit_code == ExitCode.PARTIAL
    enabled = [u for u in h.graph.users if u.get("accountEnabled")]
    assert len(h.learnster.users) == len(enabled) - 1
    assert [(oid, error) for oid, _, error in report.failures] == [
        (victim["id"], "title contains a forbidden word")
    ]

    capsys.readouterr()
    assert main(["status", "--config", str(h.config_path)]) == 0
    out = capsys.readouterr().out
    assert victim["userPrincipalName"] in out
    assert "title contains a forbidden word" in out
    assert main(["status", "--json", "--config", str(h.config_path)]) == 0
    assert '"error": "title contains a forbidden word"' in capsys.readouterr().out

    # Right away, the failed user waits for its backoff; the others are not held up.
    h.learnster.clear_rejections()
    soon = h.sync()
    assert soon.outcomes["create_user"]["deferred"] == 1
    assert h.learnster.user_by_username(victim["userPrincipalName"]) is None
    # Fixed in Learnster's eyes: once the backoff has run out, it is created, escrow cleared.
    later = datetime.now(UTC) + timedelta(minutes=6)
    again = h.sync(now=later)
    assert again.exit_code == ExitCode.OK
    assert h.learnster.user_by_username(victim["userPrincipalName"]) is not None
    capsys.readouterr()
    main(["status", "--config", str(h.config_path)])
    assert "no objects in retry" in capsys.readouterr().out


def test_sync_cli_reports_json_and_exit_code(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    h = make_harness(users=15)
    assert main(["sync", "--json", "--config", str(h.config_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "full"
    assert report["outcomes"]["create_user"]["created"] == len(h.learnster.users)
    assert report["scim_requests"]["POST /Users"] == len(h.learnster.users)


def test_dry_run_sends_nothing_and_changes_no_state(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = make_harness(users=15)
    h.sync()
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.update_user(user["id"], jobTitle="Dry Runner")
    database = h.config.state_database
    before = open(database, "rb").read()  # noqa: SIM115
    h.learnster.clear_requests()
    assert main(["sync", "--dry-run", "--config", str(h.config_path)]) == 0
    assert "Dry Runner" in capsys.readouterr().out
    assert h.learnster.requests == []
    assert open(database, "rb").read() == before  # noqa: SIM115
    h.sync()
    resource = h.learnster.user_by_username(user["userPrincipalName"])
    assert resource is not None
    assert resource["title"] == "Dry Runner"


def test_client_secret_over_tls_through_azure_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncd.config import load_config
    from syncd.fakes.graph import FakeGraph
    from syncd.fakes.learnster import FakeLearnster
    from tests.conftest import write_config

    monkeypatch.setenv("SYNCD_GRAPH_CLIENT_SECRET", "s3cret-value")
    monkeypatch.setenv("SYNCD_LEARNSTER_TOKEN", "tok")
    with (
        FakeGraph(
            generate_organisation(20, seed=8), tls=True, client_secret="s3cret-value"
        ) as graph,
        FakeLearnster(token="tok") as learnster,
    ):
        path = write_config(tmp_path, graph, learnster, auth="client_secret")
        h = Harness(graph, learnster, path, load_config(str(path)))
        report = h.sync()
        assert report.exit_code == ExitCode.OK
        assert len(learnster.users) == sum(1 for u in graph.users if u.get("accountEnabled"))
        token_requests = [r for r in graph.requests if r.path.endswith("/oauth2/v2.0/token")]
        assert len(token_requests) == 1
        assert_no_connection_open(h)  # the credential's own session is closed too

        monkeypatch.setenv("SYNCD_GRAPH_CLIENT_SECRET", "wrong-secret")
        failed = h.sync()
        assert failed.exit_code == ExitCode.AUTH
        assert "AADSTS7000215" in failed.message
        assert "wrong-secret" not in failed.message


def test_certificate_over_tls_through_azure_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from syncd.config import load_config
    from syncd.fakes.certificates import make_client_certificate
    from syncd.fakes.graph import FakeGraph
    from syncd.fakes.learnster import FakeLearnster
    from tests.conftest import write_config

    registered, stranger = make_client_certificate("syncd"), make_client_certificate("old")
    pem = registered.write(tmp_path / "graph.pem")
    monkeypatch.setenv("SYNCD_LEARNSTER_TOKEN", "tok")
    monkeypatch.delenv("SYNCD_GRAPH_CLIENT_SECRET", raising=False)
    with (
        FakeGraph(
            generate_organisation(20, seed=8),
            tls=True,
            client_secret=None,  # the app has no secret: only the certificate signs it in
            client_certificate=registered.certificate_pem,
        ) as graph,
        FakeLearnster(token="tok") as learnster,
    ):
        path = write_config(tmp_path, graph, learnster, auth="certificate", certificate_path=pem)
        assert main(["sync", "--config", str(path)]) == ExitCode.OK
        assert_learnster_matches_directory(Harness(graph, learnster, path, load_config(str(path))))
        token_requests = [r for r in graph.requests if r.path.endswith("/oauth2/v2.0/token")]
        assert len(token_requests) == 1

        stranger.write(pem)  # a certificate the app registration does not hold
        capsys.readouterr()
        assert main(["sync", "--config", str(path)]) == ExitCode.AUTH
        captured = capsys.readouterr()
        output = " ".join((captured.out + captured.err).split())
        assert (
            f"the certificate (thumbprint {stranger.thumbprint}) in [graph] certificate_path is "
            "not one of the app registration's credentials"
        ) in output
        assert f"upload the certificate's public part to app {graph.client_id}" in output
        assert "(AADSTS700027)" in output
        assert "PRIVATE KEY" not in output

        registered.write(pem)
        graph.clock_offset_seconds = 3600.0  # this host's clock is an hour behind Entra's
        assert main(["sync", "--config", str(path)]) == ExitCode.AUTH
        captured = capsys.readouterr()
        output = " ".join((captured.out + captured.err).split())
        assert "this host's clock is off, set it right (NTP) (AADSTS700024)" in output


def test_the_provisioning_log_says_what_happened_to_each_object(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = make_harness(users=12)
    victim = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.learnster.reject(victim["userPrincipalName"], 400, detail="name too long")
    h.sync()
    capsys.readouterr()
    assert (
        main(["status", "--log", victim["userPrincipalName"], "--config", str(h.config_path)]) == 0
    )
    out = capsys.readouterr().out
    assert (
        f"create_user {victim['userPrincipalName']} ({victim['id']}): failed: name too long" in out
    )
    assert main(["status", "--log", "--config", str(h.config_path)]) == 0
    out = capsys.readouterr().out
    created = sum(1 for u in h.graph.users if u.get("accountEnabled")) - 1
    lines = [line for line in out.splitlines() if " run 1 create_user " in line]
    assert len(lines) == created + 1
    assert sum(1 for line in lines if line.endswith(": created")) == created


def test_the_provisioning_log_is_kept_state_log_days(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(users=12, extra="log_days = 0.00002\n")  # in [state]: 1.7 seconds
    assert h.config.state_log_days == 0.00002
    h.sync()
    store = Store(h.config.state_database)
    try:
        assert {e.run_id for e in store.runs.entries(1000)} == {1}
        user = next(u for u in h.graph.users if u.get("accountEnabled"))
        h.graph.update_user(user["id"], jobTitle="Soaked")
        time.sleep(2)
        h.sync()
        assert [(e.run_id, e.object_id) for e in store.runs.entries(1000)] == [(2, user["id"])]
        assert [r.id for r in store.runs.recent()] == [2, 1]  # the run history stays
    finally:
        store.close()


def test_a_cycle_leaves_no_connection_open(make_harness: Callable[..., Harness]) -> None:
    """The daemon runs cycle after cycle in one process: each must close what it opened."""
    h = make_harness(users=30)
    for change in range(3):
        user = next(u for u in h.graph.users if u.get("accountEnabled"))
        h.graph.update_user(user["id"], jobTitle=f"Change {change}")
        assert h.sync().exit_code == ExitCode.OK
    assert h.graph.server.connections >= 6  # a users and a groups round each cycle
    assert h.learnster.server.connections >= 3
    assert_no_connection_open(h)


def assert_no_connection_open(h: Harness) -> None:
    deadline = time.monotonic() + 5  # the fakes see a close when their handler reads EOF
    while h.graph.server.open_connections or h.learnster.server.open_connections:
        assert time.monotonic() < deadline, (
            f"{h.graph.server.open_connections} connections to Graph and "
            f"{h.learnster.server.open_connections} to Learnster left open"
        )
        time.sleep(0.05)


def test_graph_is_read_through_the_proxy_of_the_environment(
    make_harness: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for Learnster (test_sink_transport.py): HTTP(S)_PROXY, here played by the fake."""
    import asyncio
    import dataclasses

    from syncd.adapters.graph import GraphSource

    h = make_harness(users=5)
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", h.graph.server.origin)
    # .invalid never resolves: only the proxy can carry these requests
    graph = dataclasses.replace(h.config.graph, base_url="http://graph.invalid/v1.0")
    source = GraphSource(dataclasses.replace(h.config, graph=graph))

    async def read() -> dict[str, Any] | None:
        try:
            return await source.first_user()
        finally:
            await source.aclose()

    user = asyncio.run(read())
    assert user is not None
    assert user["userPrincipalName"] in {u["userPrincipalName"] for u in h.graph.users}
    assert h.graph.requests[-1].headers["host"] == "graph.invalid"
