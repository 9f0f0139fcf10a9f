"""Taking over from Entra's push provisioning: a Learnster Entra filled, a directory that moved on."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from syncd.errors import ExitCode
from syncd.fakes.generator import generate_organisation
from tests.conftest import Harness
from tests.test_sync_e2e import assert_learnster_matches_directory


def forget_state(h: Harness) -> None:
    """A new syncd installation: no state database (Learnster stays as it was left)."""
    database = Path(h.config.state_database)
    for path in (database, *(database.with_name(database.name + s) for s in ("-wal", "-shm"))):
        if path.exists():
            os.remove(path)


def filled_by_entra(make_harness: Callable[..., Harness], users: int, groups: int) -> Harness:
    """Learnster as Entra's push leaves it: every user and tag with the same mapping (Learnster's
    documented table, which syncd sends too), and none of syncd's own state."""
    h = make_harness(generate_organisation(users, seed=11, groups=groups))
    assert h.sync().exit_code == ExitCode.OK
    forget_state(h)
    h.learnster.clear_requests()
    return h


def requests_by_kind(h: Harness) -> Counter[str]:
    return Counter(f"{r.method} /{r.path.strip('/').split('/')[0]}" for r in h.scim_requests())


def test_a_takeover_sends_only_what_changed_since_push_stopped(
    make_harness: Callable[..., Harness],
) -> None:
    h = filled_by_entra(make_harness, users=1000, groups=40)
    enabled = [u for u in h.graph.users if u.get("accountEnabled")]
    groups = [g for g in h.graph.groups if len(h.graph.member_ids(g["id"])) >= 3]
    renamed, joined, left, hired_into = groups[0], groups[1], groups[2], groups[3]
    for user in enabled[:20]:
        h.graph.update_user(user["id"], jobTitle=f"{user.get('jobTitle') or 'Staff'} (new)")
    hires = [
        h.graph.add_user(
            {"userPrincipalName": f"hire{i}@contoso.example", "managerId": enabled[100]["id"]}
        )
        for i in range(5)
    ]
    for hire in hires:
        h.graph.add_member(hired_into["id"], hire)
    h.graph.rename_group(renamed["id"], f"{renamed['displayName']} (renamed)")
    outsiders = [u for u in enabled[200:] if u["id"] not in h.graph.member_ids(joined["id"])]
    for user in outsiders[:3]:
        h.graph.add_member(joined["id"], user["id"])
    leavers = [m for m in h.graph.member_ids(left["id"]) if m in {u["id"] for u in enabled}][:2]
    for member in leavers:
        h.graph.remove_member(left["id"], member)

    report = h.sync()
    assert report.exit_code == ExitCode.OK, report.failures
    sent = requests_by_kind(h)
    assert sent["POST /Users"] == 5
    assert sent["POST /Groups"] == 0
    assert sent["PATCH /Users"] == 20
    group_patches = [r for r in h.scim_requests() if r.method == "PATCH" and "Groups" in r.path]
    patched = {r.path.split("/")[2] for r in group_patches}
    tag_of = {g["id"]: h.learnster.group_by_external_id(g["id"]) for g in groups[:4]}
    assert patched == {tag_of[g["id"]]["id"] for g in (renamed, joined, left, hired_into)}  # type: ignore[index]
    assert len(group_patches) == 4
    # Reads: users and tags listed in pages, each adopted tag's members read once.
    assert sent["GET /Users"] <= 3
    assert sent["GET /Groups"] == 1 + len(h.graph.groups)
    assert report.outcomes["create_user"]["adopted"] == len(enabled)
    assert_learnster_matches_directory(h)

    h.learnster.clear_requests()
    assert h.sync().exit_code == ExitCode.OK
    assert h.scim_requests() == []


def test_an_adopted_tag_keeps_members_no_directory_user_is_and_its_suffixed_name(
    make_harness: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    """A member of an adopted tag that is no linked directory user (made by hand in
    Learnster) is never removed; a name Learnster suffixed on a clash is not renamed back."""
    h = filled_by_entra(make_harness, users=30, groups=4)
    stranger = h.learnster.add_user(
        {"schemas": [CORE], "userName": "visitor@elsewhere.example", "active": True}
    )
    group = max(h.graph.groups, key=lambda g: len(h.graph.member_ids(g["id"])))
    tag = h.learnster.group_by_external_id(group["id"])
    assert tag is not None
    tag["members"].append({"value": stranger})
    tag["displayName"] = f"{group['displayName']} (2)"
    caplog.set_level(logging.INFO, logger="syncd.cycle")
    report = h.sync()
    assert (
        f"tag {group['displayName']}: 1 members that are no linked directory user are left as "
        "they are" in caplog.messages
    )
    assert report.exit_code == ExitCode.OK
    assert [r for r in h.scim_requests() if r.method != "GET"] == []
    assert report.outcomes["create_group"] == {"unchanged": len(h.graph.groups)}
    tag = h.learnster.group_by_external_id(group["id"])
    assert tag is not None
    assert {"value": stranger} in [{"value": m["value"]} for m in tag["members"]]
    assert_learnster_matches_directory(h, extra_users=1)


CORE = "urn:ietf:params:scim:schemas:core:2.0:User"


def test_a_guest_is_sent_without_ext_and_found_again_on_takeover(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(users=10)
    guest = h.graph.add_user(
        {
            "userPrincipalName": "anna_fabrikam.com#EXT#@contoso.example",
            "userType": "Guest",
            "mail": "anna@fabrikam.com",
            "displayName": "Anna (Fabrikam)",
        }
    )
    plain = h.graph.add_user({"userPrincipalName": "first_last@contoso.example"})
    emailish = h.graph.add_user(  # a guest whose UPN is their e-mail address: sent as it is
        {"userPrincipalName": "bo.ek@partner.example", "userType": "Guest"}
    )
    assert h.sync().exit_code == ExitCode.OK
    assert h.learnster.user_by_username("anna_fabrikam.com@contoso.example") is not None
    assert h.learnster.user_by_username("first_last@contoso.example") is not None
    assert h.learnster.user_by_username("bo.ek@partner.example") is not None
    assert not [u for u in h.learnster.users.values() if "#" in u["userName"]]

    forget_state(h)
    h.learnster.clear_requests()
    report = h.sync()
    assert report.exit_code == ExitCode.OK
    assert [r for r in h.scim_requests() if r.method == "POST"] == []
    assert report.outcomes["create_user"]["adopted"] == len(h.learnster.users)
    assert {guest, plain, emailish} <= set(report.labels)
    assert_learnster_matches_directory(h)


def hand_made(h: Harness, user_name: str, email: str) -> str:
    """A Learnster user made by hand: its userName is an e-mail address, not the UPN."""
    return h.learnster.add_user(
        {
            "schemas": [CORE],
            "userName": user_name,
            "active": True,
            "emails": [{"type": "work", "value": email}],
        }
    )


@pytest.mark.parametrize("listed", [False, True], ids=["looked up", "listed"])
def test_match_by_emails_adopts_by_work_email_and_renames_to_the_upn(
    make_harness: Callable[..., Harness], listed: bool
) -> None:
    h = make_harness(users=30 if listed else 3)
    h.reconfigure('[sync]\nmatch_by = ["userName", "emails"]\n')
    anna = h.graph.add_user(
        {"userPrincipalName": "a.berg@contoso.example", "mail": "anna.berg@mail.example"}
    )
    learnster_id = hand_made(h, "anna.berg@mail.example", "Anna.Berg@mail.example")
    report = h.sync()
    assert report.exit_code == ExitCode.OK, report.failures
    assert h.learnster.users[learnster_id]["userName"] == "a.berg@contoso.example"
    assert h.learnster.user_by_username("anna.berg@mail.example") is None
    posts = [r.body.get("userName") for r in h.scim_requests() if r.method == "POST"]
    assert "a.berg@contoso.example" not in posts
    patch = next(r for r in h.scim_requests() if r.path == f"/Users/{learnster_id}")
    assert {"op": "replace", "path": "userName", "value": "a.berg@contoso.example"} in patch.body[
        "Operations"
    ]
    assert anna in report.labels


def test_match_by_username_alone_does_not_adopt_by_email(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(users=3)
    h.graph.add_user(
        {"userPrincipalName": "a.berg@contoso.example", "mail": "anna.berg@mail.example"}
    )
    learnster_id = hand_made(h, "anna.berg@mail.example", "anna.berg@mail.example")
    assert h.sync().exit_code == ExitCode.OK
    assert h.learnster.users[learnster_id]["userName"] == "anna.berg@mail.example"
    assert h.learnster.user_by_username("a.berg@contoso.example") is not None


@pytest.mark.parametrize("listed", [False, True], ids=["looked up", "listed"])
def test_two_learnster_users_matching_one_adopt_neither_and_status_names_both(
    make_harness: Callable[..., Harness], listed: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    from syncd.app.cli import main

    h = make_harness(users=30 if listed else 3)
    h.reconfigure('[sync]\nmatch_by = ["userName", "emails"]\n')
    anna = h.graph.add_user(
        {"userPrincipalName": "a.berg@contoso.example", "mail": "anna.berg@mail.example"}
    )
    first = hand_made(h, "anna.berg@mail.example", "anna.berg@mail.example")
    second = hand_made(h, "anna.b@home.example", "ANNA.BERG@mail.example")
    report = h.sync()
    assert report.exit_code == ExitCode.PARTIAL
    [failure] = report.failures
    assert failure.object_id == anna
    assert "matches 2 Learnster users by emails" in failure.error
    assert first in failure.error
    assert second in failure.error
    assert h.learnster.user_by_username("a.berg@contoso.example") is None
    assert {h.learnster.users[i]["userName"] for i in (first, second)} == {
        "anna.berg@mail.example",
        "anna.b@home.example",
    }
    capsys.readouterr()
    assert main(["status", "--config", str(h.config_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"a.berg@contoso.example ({anna})" in out
    assert first in out
    assert second in out


def test_plan_shows_how_a_takeover_will_match_before_it_happens(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import json

    from syncd.app.cli import main

    h = filled_by_entra(make_harness, users=40, groups=5)
    h.reconfigure('[sync]\nmatch_by = ["userName", "emails"]\n')
    guest = h.graph.add_user(
        {"userPrincipalName": "eva_fabrikam.com#EXT#@contoso.example", "userType": "Guest"}
    )
    hire = h.graph.add_user({"userPrincipalName": "new@contoso.example", "mail": "n@mail.example"})
    by_mail = hand_made(h, "n@mail.example", "n@mail.example")
    users = len([u for u in h.graph.users if u.get("accountEnabled")])
    h.learnster.clear_requests()
    assert main(["sync", "--dry-run", "--config", str(h.config_path)]) == 0
    assert h.learnster.requests == []  # a dry run does not even read Learnster; plan does
    capsys.readouterr()
    plan_file = tmp_path / "plan.json"
    assert main(["plan", "--json", "--out", str(plan_file), "--config", str(h.config_path)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["matching"] == {
        "tags": {"adopt by externalId": len(h.graph.groups)},
        "users": {"adopt by emails": 1, "adopt by userName": users - 2, "create": 1},
    }
    match = {op["object"]: op.get("match") for op in document["operations"]}
    assert match[hire] == "adopt by emails"
    assert match[guest] == "create"
    assert [op["object"] for op in document["operations"] if op.get("guest")] == [guest]
    assert {r.method for r in h.scim_requests()} == {"GET"}  # a plan writes nothing

    assert main(["plan", "--config", str(h.config_path)]) == 0
    out = capsys.readouterr().out
    assert f"eva_fabrikam.com#EXT#@contoso.example ({guest}) guest [create]" in out
    assert f"Matching in Learnster, users: 1 adopt by emails, {users - 2} adopt by userName" in out

    assert main(["apply", str(plan_file), "--config", str(h.config_path)]) == 0
    assert h.learnster.users[by_mail]["userName"] == "new@contoso.example"
    assert h.learnster.user_by_username("eva_fabrikam.com@contoso.example") is not None
