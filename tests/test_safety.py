"""Safety for brownfield tenants: partial reads, the deletion guard, plans, adoption (issue 4)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from syncd.app.cli import main
from syncd.errors import ExitCode
from syncd.fakes.generator import Organisation, generate_organisation
from tests.conftest import Harness
from tests.test_sync_e2e import assert_user_matches

PILOT_ID = "00000000-0000-0000-0000-00000000c001"


def active_patches(h: Harness, value: bool) -> list[Any]:
    return [
        r
        for r in h.scim_requests()
        if r.method == "PATCH"
        and r.path.startswith("/Users/")
        and {"op": "replace", "path": "active", "value": value} in r.body["Operations"]
    ]


def test_a_graph_failure_on_page_3_of_5_deactivates_no_one(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(generate_organisation(450, seed=6), graph_options={"page_size_max": 100})
    assert h.sync().exit_code == ExitCode.OK
    linked = len(h.learnster.users)
    someone = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.update_user(someone["id"], jobTitle="Changed before the failure")

    h.graph.fail_page("/users/delta", 3, status=500, times=None)
    h.learnster.clear_requests()
    report = h.sync(full=True)
    assert report.exit_code == ExitCode.AUTH
    assert "did not complete" in report.message
    assert sum(1 for r in h.graph.requests if "users/delta" in r.path and r.status == 200) >= 2
    assert active_patches(h, False) == []
    assert not [r for r in h.scim_requests() if r.method == "DELETE"]
    assert all(u["active"] for u in h.learnster.users.values())
    assert len(h.learnster.users) == linked

    # Recovered: the next cycle reads everything and applies the change it missed.
    h.graph.clear_faults()
    assert h.sync().exit_code == ExitCode.OK
    resource = h.learnster.user_by_username(someone["userPrincipalName"])
    assert resource is not None
    assert resource["title"] == "Changed before the failure"


def test_a_failing_delta_round_keeps_its_link_and_loses_no_change(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(users=30)
    h.sync()
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.soft_delete_user(user["id"])
    h.graph.fail_page("/users/delta", 1, status=500, times=None)
    assert h.sync().exit_code == ExitCode.AUTH
    resource = h.learnster.user_by_username(user["userPrincipalName"])
    assert resource is not None
    assert resource["active"] is True
    h.graph.clear_faults()
    assert h.sync().exit_code == ExitCode.OK
    assert h.learnster.users[resource["id"]]["active"] is False


def pilot_org(members: int = 8) -> Organisation:
    org = generate_organisation(40, seed=12)
    enabled = [u for u in org.users if u.get("accountEnabled")]
    org.groups.append(
        {"id": PILOT_ID, "displayName": "Pilot", "memberIds": [u["id"] for u in enabled[:members]]}
    )
    return org


def test_an_emptied_scope_group_trips_the_guard_until_allow_deletions(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = make_harness(pilot_org(), extra='[scope]\nmode = "groups"\ngroups = ["Pilot"]\n')
    assert h.sync().exit_code == ExitCode.OK
    assert len(h.learnster.users) == 8
    for member in h.graph.member_ids(PILOT_ID):
        h.graph.remove_member(PILOT_ID, member)

    h.learnster.clear_requests()
    assert main(["sync", "--config", str(h.config_path)]) == ExitCode.GUARD
    assert "deletion guard" in capsys.readouterr().out
    assert active_patches(h, False) == []
    assert all(u["active"] for u in h.learnster.users.values())

    assert main(["status", "--config", str(h.config_path)]) == 0
    assert "deletion guard holds 8 removals" in capsys.readouterr().out
    assert main(["plan", "--config", str(h.config_path)]) == 0
    assert "8 removals held by the deletion guard" in capsys.readouterr().out

    # Held again on the next ordinary cycle: the guard does not wear off by itself.
    assert main(["sync", "--config", str(h.config_path)]) == ExitCode.GUARD
    assert all(u["active"] for u in h.learnster.users.values())

    assert main(["sync", "--allow-deletions", "--config", str(h.config_path)]) == 0
    assert not any(u["active"] for u in h.learnster.users.values())
    capsys.readouterr()
    assert main(["status", "--config", str(h.config_path)]) == 0
    assert "deletion guard: clear" in capsys.readouterr().out


def test_max_deletions_counts_users_and_groups_together(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(users=40, extra="[sync]\nmax_deletions = 3\nmax_deletion_percent = 0\n")
    h.sync()
    users = [u for u in h.graph.users if u.get("accountEnabled")]
    for user in users[:2]:
        h.graph.disable_user(user["id"])
    h.graph.delete_group(h.graph.groups[0]["id"])
    report = h.sync()
    assert report.exit_code == ExitCode.OK  # 3 removals: not more than max_deletions
    h.graph.disable_user(users[2]["id"])
    h.graph.disable_user(users[3]["id"])
    h.graph.delete_group(h.graph.groups[0]["id"])
    h.graph.delete_group(h.graph.groups[1]["id"])
    report = h.sync()
    assert report.exit_code == ExitCode.GUARD
    assert report.held == 4


def test_a_upn_rename_is_a_patch_of_username_not_a_new_user(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(users=20)
    h.sync()
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    scim_id = h.learnster.user_by_username(user["userPrincipalName"])["id"]  # type: ignore[index]
    h.graph.update_user(user["id"], userPrincipalName="renamed.person@contoso.example")
    h.learnster.clear_requests()
    h.sync()
    assert [(r.method, r.path, r.body["Operations"]) for r in h.scim_requests()] == [
        (
            "PATCH",
            f"/Users/{scim_id}",
            [{"op": "replace", "path": "userName", "value": "renamed.person@contoso.example"}],
        )
    ]
    assert h.learnster.users[scim_id]["userName"] == "renamed.person@contoso.example"


def brownfield_copy(user: dict[str, Any]) -> dict[str, Any]:
    """The same person as someone typed them into Learnster by hand, years ago."""
    return {
        "userName": user["userPrincipalName"].upper(),
        "displayName": f"{(user.get('surname') or '').upper()}, {user.get('givenName') or ''}",
        "title": "(imported)",
        "name": {"givenName": (user.get("givenName") or "").lower()},
        "emails": [{"type": "work", "value": user["userPrincipalName"].upper()}],
        "addresses": [{"type": "work", "locality": "somewhere", "country": "XX"}],
    }


@pytest.mark.slow
def test_a_brownfield_learnster_ends_with_no_duplicates_and_strangers_untouched(
    make_harness: Callable[..., Harness],
) -> None:
    org = generate_organisation(1000, seed=9)
    for user in org.users:
        user["accountEnabled"] = True
    h = make_harness(org)
    for user in org.users:
        h.learnster.add_user(brownfield_copy(user))
    strangers = {}
    for i in range(50):
        sid = h.learnster.add_user(
            {"userName": f"contractor{i}@elsewhere.example", "displayName": f"Contractor {i}"}
        )
        strangers[sid] = json.dumps(h.learnster.users[sid], sort_keys=True)

    report = h.sync()
    assert report.exit_code == ExitCode.OK, report.failures
    assert report.outcomes["create_user"]["adopted"] == 1000
    names = [u["userName"].lower() for u in h.learnster.users.values()]
    assert len(names) == len(set(names)) == 1050
    for sid, before in strangers.items():
        assert json.dumps(h.learnster.users[sid], sort_keys=True) == before
    touched = {r.path.split("/")[2] for r in h.scim_requests() if r.path.count("/") == 2}
    assert not touched & set(strangers)
    for user in org.users:
        resource = h.learnster.user_by_username(user["userPrincipalName"])
        assert resource is not None
        assert_user_matches(user, resource, adopted=True)
    # One listing of Learnster's users, not one lookup per user.
    reads = [r for r in h.scim_requests() if r.method == "GET" and r.path == "/Users"]
    assert len(reads) <= math.ceil(1050 / 500) + 1
    assert not [r for r in h.scim_requests() if r.method == "POST" and r.path == "/Users"]


def test_a_saved_plan_applies_the_still_valid_operations_and_reports_the_stale(
    make_harness: Callable[..., Harness], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = make_harness(users=20)
    h.sync()
    users = [u for u in h.graph.users if u.get("accountEnabled")]
    kept, changed_again, hire_upn = users[0], users[1], "planned.hire@contoso.example"
    h.graph.update_user(kept["id"], jobTitle="Reviewed title")
    h.graph.update_user(changed_again["id"], jobTitle="Reviewed other title")
    h.graph.add_user({"userPrincipalName": hire_upn, "displayName": "Planned Hire"})
    plan_file = tmp_path / "plan.json"
    assert main(["plan", "--out", str(plan_file), "--config", str(h.config_path)]) == 0
    saved = json.loads(plan_file.read_text())
    assert sorted(op["kind"] for op in saved["operations"]) == [
        "create_user",
        "update_user",
        "update_user",
    ]

    # After the review, the tenant moves on: one reviewed change is overtaken, one is new.
    h.graph.update_user(changed_again["id"], jobTitle="Changed after the review")
    unreviewed = users[2]
    h.graph.update_user(unreviewed["id"], jobTitle="Never reviewed")
    capsys.readouterr()
    h.learnster.clear_requests()
    assert main(["apply", str(plan_file), "--config", str(h.config_path)]) == 0
    out = capsys.readouterr().out
    assert "stale, skipped" in out
    assert changed_again["userPrincipalName"] in out

    def title(upn: str) -> str | None:
        resource = h.learnster.user_by_username(upn)
        assert resource is not None
        return resource.get("title")

    assert title(kept["userPrincipalName"]) == "Reviewed title"
    assert title(hire_upn) is None  # created (it has no title)
    assert title(changed_again["userPrincipalName"]) != "Reviewed other title"
    assert title(unreviewed["userPrincipalName"]) != "Never reviewed"
    assert len([r for r in h.scim_requests() if r.method in ("POST", "PATCH")]) == 2

    # An ordinary cycle afterwards brings the rest.
    h.sync()
    assert title(changed_again["userPrincipalName"]) == "Changed after the review"
    assert title(unreviewed["userPrincipalName"]) == "Never reviewed"


def test_apply_refuses_a_plan_for_another_tenant_or_a_broken_file(
    make_harness: Callable[..., Harness], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = make_harness(users=5)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"plan_format": 1, "tenant_url": "https://x.example/scim/v2"}))
    assert main(["apply", str(other), "--config", str(h.config_path)]) == ExitCode.USAGE
    assert "was made for https://x.example/scim/v2" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["apply", str(broken), "--config", str(h.config_path)]) == ExitCode.USAGE
    assert main(["apply", str(tmp_path / "missing.json"), "--config", str(h.config_path)]) == 2
