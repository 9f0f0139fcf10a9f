"""`syncd provision USER`: one user through the full path, now (issue 4)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from syncd.app.cli import main
from syncd.errors import ExitCode
from tests.conftest import Harness

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def test_provision_a_new_hire_with_a_new_manager_and_groups(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = make_harness(users=30)
    assert h.sync().exit_code == ExitCode.OK
    boss = h.graph.add_user(
        {"userPrincipalName": "new.boss@contoso.example", "displayName": "New Boss"}
    )
    hire = h.graph.add_user(
        {
            "userPrincipalName": "new.hire@contoso.example",
            "displayName": "New Hire",
            "jobTitle": "Trainee",
            "managerId": boss,
        }
    )
    group = h.graph.groups[0]
    h.graph.add_member(group["id"], hire)
    h.learnster.clear_requests()
    capsys.readouterr()

    assert main(["provision", "new.hire@contoso.example", "--config", str(h.config_path)]) == 0
    out = capsys.readouterr().out
    assert "new.hire@contoso.example" in out
    assert "new.boss@contoso.example" in out
    posts = [r for r in h.scim_requests() if r.method == "POST"]
    assert [p.body["userName"] for p in posts] == [
        "new.boss@contoso.example",
        "new.hire@contoso.example",
    ]
    boss_scim = h.learnster.user_by_username("new.boss@contoso.example")["id"]  # type: ignore[index]
    assert posts[1].body[ENTERPRISE]["manager"] == {"value": boss_scim}
    hire_scim = h.learnster.user_by_username("new.hire@contoso.example")["id"]  # type: ignore[index]
    tag = h.learnster.group_by_external_id(group["id"])
    assert tag is not None
    assert {"value": hire_scim} in [{"value": m["value"]} for m in tag["members"]]

    # The scheduled cycle finds nothing left to do for them.
    h.learnster.clear_requests()
    assert h.sync().exit_code == ExitCode.OK
    assert not [r for r in h.scim_requests() if hire_scim in r.path or boss_scim in r.path]
    assert not [r for r in h.scim_requests() if r.method == "POST"]


def test_provision_by_object_id_updates_an_existing_user(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = make_harness(users=20)
    h.sync()
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.update_user(user["id"], jobTitle="Provisioned now")
    h.learnster.clear_requests()
    assert main(["provision", user["id"], "--config", str(h.config_path)]) == 0
    assert [(r.method, r.body["Operations"]) for r in h.scim_requests()] == [
        ("PATCH", [{"op": "replace", "path": "title", "value": "Provisioned now"}])
    ]
    assert main(["provision", user["id"], "--config", str(h.config_path)]) == 0
    assert "already up to date" in capsys.readouterr().out


def test_provision_refuses_unknown_and_out_of_scope_users(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = make_harness(users=20)
    assert main(["provision", "nobody@contoso.example", "--config", str(h.config_path)]) == 2
    assert "no user 'nobody@contoso.example' in the directory" in capsys.readouterr().err
    group = h.graph.groups[0]
    h.reconfigure(f'[scope]\nmode = "groups"\ngroups = ["{group["displayName"]}"]\n')
    outsider = next(
        u
        for u in h.graph.users
        if u.get("accountEnabled") and u["id"] not in h.graph.member_ids(group["id"])
    )
    assert main(["provision", outsider["userPrincipalName"], "--config", str(h.config_path)]) == 2
    assert "is not a member of any [scope] group" in capsys.readouterr().err
    assert h.learnster.requests == []
