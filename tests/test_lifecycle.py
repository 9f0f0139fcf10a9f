"""A scripted tenant life, cycle by cycle: the exact SCIM requests of each cycle (issue 3)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from syncd.adapters.sqlite import Store
from syncd.app.wiring import sync_once
from syncd.errors import ExitCode
from syncd.fakes.generator import Organisation, generate_organisation
from tests.conftest import Harness

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
MANAGER_PATH = f"{ENTERPRISE}:manager"


def scim_id(h: Harness, upn: str) -> str:
    resource = h.learnster.user_by_username(upn)
    assert resource is not None, upn
    return str(resource["id"])


def sent(h: Harness) -> list[tuple[str, str, Any]]:
    """(method, path, operations or body) of every SCIM request the last cycle made."""
    out = []
    for r in h.scim_requests():
        body = (
            r.body.get("Operations")
            if isinstance(r.body, dict) and "Operations" in r.body
            else r.body
        )
        out.append((r.method, r.path, body))
    return out


def cycle(h: Harness, **kwargs: Any) -> list[tuple[str, str, Any]]:
    h.learnster.clear_requests()
    h.graph.clear_requests()
    report = h.sync(**kwargs)
    assert report.exit_code == ExitCode.OK, (report.message, report.failures)
    return sent(h)


def small_org() -> Organisation:
    return generate_organisation(30, seed=11)


def test_a_tenant_life_cycle_by_cycle(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(small_org())
    assert cycle(h)  # the initial full cycle
    users = [u for u in h.graph.users if u.get("accountEnabled")]
    boss, other_boss, worker = users[0], users[1], users[5]

    # -- hire, with a manager who already exists in Learnster: the manager rides in the POST
    hire = h.graph.add_user(
        {
            "userPrincipalName": "new.hire@contoso.example",
            "displayName": "New Hire",
            "givenName": "New",
            "surname": "Hire",
            "jobTitle": "Trainee",
            "managerId": boss["id"],
        }
    )
    requests = cycle(h)
    assert [(m, p) for m, p, _ in requests] == [("GET", "/Users"), ("POST", "/Users")]
    post = requests[1][2]
    assert post["userName"] == "new.hire@contoso.example"
    assert post[ENTERPRISE]["manager"] == {"value": scim_id(h, boss["userPrincipalName"])}
    hire_scim = scim_id(h, "new.hire@contoso.example")

    # -- attribute change and manager change: one PATCH, one operation each
    h.graph.update_user(hire, jobTitle="Engineer")
    h.graph.set_manager(hire, other_boss["id"])
    assert cycle(h) == [
        (
            "PATCH",
            f"/Users/{hire_scim}",
            [
                {"op": "replace", "path": "title", "value": "Engineer"},
                {
                    "op": "replace",
                    "path": MANAGER_PATH,
                    "value": {"value": scim_id(h, other_boss["userPrincipalName"])},
                },
            ],
        )
    ]

    # -- manager removed
    h.graph.set_manager(hire, None)
    assert cycle(h) == [("PATCH", f"/Users/{hire_scim}", [{"op": "remove", "path": MANAGER_PATH}])]

    # -- disable and re-enable
    h.graph.disable_user(hire)
    assert cycle(h) == [
        ("PATCH", f"/Users/{hire_scim}", [{"op": "replace", "path": "active", "value": False}])
    ]
    h.graph.enable_user(hire)
    assert cycle(h) == [
        ("PATCH", f"/Users/{hire_scim}", [{"op": "replace", "path": "active", "value": True}])
    ]

    # -- soft delete (recycle bin) and restore
    h.graph.soft_delete_user(hire)
    assert cycle(h) == [
        ("PATCH", f"/Users/{hire_scim}", [{"op": "replace", "path": "active", "value": False}])
    ]
    h.graph.restore_user(hire)
    assert cycle(h) == [
        ("PATCH", f"/Users/{hire_scim}", [{"op": "replace", "path": "active", "value": True}])
    ]

    # -- group: member added, member removed, renamed
    group = next(g for g in h.graph.groups if h.graph.member_ids(g["id"]))
    tag = h.learnster.group_by_external_id(group["id"])
    assert tag is not None
    h.graph.add_member(group["id"], hire)
    assert cycle(h) == [
        (
            "PATCH",
            f"/Groups/{tag['id']}",
            [{"op": "add", "path": "members", "value": [{"value": hire_scim}]}],
        )
    ]
    h.graph.remove_member(group["id"], hire)
    assert cycle(h) == [
        (
            "PATCH",
            f"/Groups/{tag['id']}",
            [{"op": "remove", "path": f'members[value eq "{hire_scim}"]'}],
        )
    ]
    h.graph.rename_group(group["id"], "Renamed Team")
    assert cycle(h) == [
        (
            "PATCH",
            f"/Groups/{tag['id']}",
            [{"op": "replace", "path": "displayName", "value": "Renamed Team"}],
        )
    ]
    assert h.learnster.groups[tag["id"]]["displayName"] == "Renamed Team"

    # -- hard delete: DELETE, and the user's tags go with it (no member-removal request)
    h.graph.add_member(group["id"], worker["id"]) if worker["id"] not in h.graph.member_ids(
        group["id"]
    ) else None
    cycle(h)
    worker_scim = scim_id(h, worker["userPrincipalName"])
    h.graph.hard_delete_user(worker["id"])
    assert cycle(h) == [("DELETE", f"/Users/{worker_scim}", None)]
    assert worker_scim not in h.learnster.users

    # -- group deleted in Entra: the tag is deleted
    h.graph.delete_group(group["id"])
    assert cycle(h) == [("DELETE", f"/Groups/{tag['id']}", None)]

    # -- nothing changed: one delta round per resource, nothing to Learnster, nothing planned
    assert cycle(h) == []
    quiet = h.sync()
    assert not quiet.planned
    h.graph.clear_requests()
    assert cycle(h) == []
    assert sorted((r.method, r.path.rstrip("()")) for r in h.graph.requests) == [
        ("GET", "/v1.0/groups/delta"),  # read at the same time as users: in either order
        ("GET", "/v1.0/users/delta"),
    ]


def test_hard_delete_deactivates_when_so_configured(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(small_org(), extra='[sync]\non_hard_delete = "deactivate"\n')
    cycle(h)
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    target = scim_id(h, user["userPrincipalName"])
    groups = [g["id"] for g in h.graph.groups if user["id"] in h.graph.member_ids(g["id"])]
    h.graph.hard_delete_user(user["id"])
    requests = cycle(h)
    # Graph no longer lists the deleted user in any group, so the tags lose the user too.
    assert requests[-1] == (
        "PATCH",
        f"/Users/{target}",
        [{"op": "replace", "path": "active", "value": False}],
    )
    tags = {h.learnster.group_by_external_id(g)["id"] for g in groups}  # type: ignore[index]
    assert sorted(requests[:-1]) == sorted(
        ("PATCH", f"/Groups/{t}", [{"op": "remove", "path": f'members[value eq "{target}"]'}])
        for t in tags
    )
    assert h.learnster.users[target]["active"] is False


def test_an_expired_delta_token_falls_back_to_a_full_read_without_deactivating_anyone(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(small_org())
    cycle(h)
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.update_user(user["id"], jobTitle="Changed while the token expired")
    h.graph.expire_delta_tokens()
    h.learnster.clear_requests()
    report = h.sync()
    assert report.mode == "full"
    assert [(m, p) for m, p, _ in sent(h)] == [
        ("PATCH", f"/Users/{scim_id(h, user['userPrincipalName'])}")
    ]
    assert all(u["active"] for u in h.learnster.users.values())
    assert cycle(h) == []  # the new delta link works


def test_periodic_full_read_reconciles_and_sends_only_real_differences(
    make_harness: Callable[..., Harness],
) -> None:
    from datetime import UTC, datetime, timedelta

    h = make_harness(small_org())
    cycle(h)
    later = datetime.now(UTC) + timedelta(days=8)
    h.learnster.clear_requests()
    report = h.sync(now=later)
    assert report.mode == "full"
    assert h.scim_requests() == []
    report = h.sync(now=later + timedelta(hours=1))
    assert report.mode == "delta"


def test_reset_makes_the_next_cycle_full(make_harness: Callable[..., Harness]) -> None:
    from syncd.app.cli import main

    h = make_harness(small_org())
    cycle(h)
    assert main(["reset", "--config", str(h.config_path)]) == 0
    h.learnster.clear_requests()
    assert h.sync().mode == "full"
    assert h.scim_requests() == []


def test_reset_forget_links_rematches_every_user_without_duplicates(
    make_harness: Callable[..., Harness],
) -> None:
    from syncd.app.cli import main

    h = make_harness(small_org())
    cycle(h)
    count = len(h.learnster.users)
    assert main(["reset", "--forget-links", "--config", str(h.config_path)]) == 0
    h.learnster.clear_requests()
    report = h.sync()
    assert report.outcomes["create_user"]["adopted"] == count
    assert len(h.learnster.users) == count
    assert not [r for r in h.scim_requests() if r.method == "POST"]


def test_a_big_group_split_across_delta_pages_arrives_whole(
    make_harness: Callable[..., Harness],
) -> None:
    org = generate_organisation(2700, seed=4, groups=5)
    h = make_harness(org)
    cycle(h)
    members = [u["id"] for u in h.graph.users if u.get("accountEnabled")][:2540]
    assert len(members) == 2540
    gid = h.graph.add_group({"displayName": "Everyone Big"}, member_ids=members)
    requests = cycle(h)
    tag = h.learnster.group_by_external_id(gid)
    assert tag is not None
    assert len(tag["members"]) == 2540
    kinds = [(m, p.split("/")[1]) for m, p, _ in requests]
    # member_batch_size = 100: the 40 that do not fill a batch ride in the POST
    (post,) = [body for m, p, body in requests if (m, p) == ("POST", "/Groups")]
    assert len(post["members"]) == 40
    assert kinds.count(("PATCH", "Groups")) == 25
    # The delta response really did split the group's members across pages.
    assert sum(1 for r in h.graph.requests if "groups/delta" in r.path) > 1

    removed = members[:1200]
    for uid in removed:
        h.graph.remove_member(gid, uid)
    requests = cycle(h)
    assert len(requests) == 12
    tag = h.learnster.group_by_external_id(gid)
    assert tag is not None
    assert len(tag["members"]) == 1340


def scoped(extra: str = "") -> str:
    return '[scope]\nmode = "groups"\ngroups = ["Pilot"]\n' + extra


def test_scope_groups_membership_changes_deactivate_and_reactivate(
    make_harness: Callable[..., Harness],
) -> None:
    org = small_org()
    users = [u for u in org.users if u.get("accountEnabled")]
    pilot = {
        "id": "00000000-0000-0000-0000-00000000a001",
        "displayName": "Pilot",
        "memberIds": [u["id"] for u in users[:5]],
    }
    org.groups.append(pilot)
    h = make_harness(org, extra=scoped())
    requests = cycle(h)
    assert len(h.learnster.users) == 5
    assert {g["displayName"] for g in h.learnster.groups.values()} == {"Pilot"}  # sync_groups=scope
    kinds = sorted((m, p.split("/")[1]) for m, p, _ in requests)
    # few creates: one lookup by userName each; the group list is read once to adopt our tags;
    # the tag's 5 members (less than a batch) ride in its POST
    assert kinds == sorted(
        [("GET", "Groups")]
        + [("GET", "Users")] * 5
        + [("POST", "Users")] * 5
        + [("POST", "Groups")]
    )
    (tag,) = h.learnster.groups.values()
    assert len(tag["members"]) == 5

    leaver, joiner = users[0], users[10]
    h.graph.remove_member(pilot["id"], leaver["id"])
    h.graph.add_member(pilot["id"], joiner["id"])
    requests = cycle(h)
    leaver_scim = scim_id(h, leaver["userPrincipalName"])
    assert (
        "PATCH",
        f"/Users/{leaver_scim}",
        [{"op": "replace", "path": "active", "value": False}],
    ) in requests
    assert h.learnster.user_by_username(joiner["userPrincipalName"])["active"] is True  # type: ignore[index]

    h.graph.add_member(pilot["id"], leaver["id"])
    requests = cycle(h)
    assert (
        "PATCH",
        f"/Users/{leaver_scim}",
        [{"op": "replace", "path": "active", "value": True}],
    ) in requests


def test_a_manager_who_enters_scope_after_the_report_is_linked_in_the_same_cycle(
    make_harness: Callable[..., Harness],
) -> None:
    org = small_org()
    report_user = next(u for u in org.users if u.get("managerId") and u.get("accountEnabled"))
    manager = org.user(report_user["managerId"])
    manager["accountEnabled"] = True
    pilot = {
        "id": "00000000-0000-0000-0000-00000000a002",
        "displayName": "Pilot",
        "memberIds": [report_user["id"]],
    }
    org.groups.append(pilot)
    h = make_harness(org, extra=scoped())
    cycle(h)
    resource = h.learnster.user_by_username(report_user["userPrincipalName"])
    assert resource is not None
    assert "manager" not in resource.get(ENTERPRISE, {})  # the manager is out of scope

    h.graph.add_member(pilot["id"], manager["id"])
    requests = cycle(h)
    manager_scim = scim_id(h, manager["userPrincipalName"])
    report_scim = scim_id(h, report_user["userPrincipalName"])
    assert (
        "PATCH",
        f"/Users/{report_scim}",
        [{"op": "replace", "path": MANAGER_PATH, "value": {"value": manager_scim}}],
    ) in requests
    assert h.learnster.users[report_scim][ENTERPRISE]["manager"]["value"] == manager_scim


def test_nested_scope_and_sync_groups_all(make_harness: Callable[..., Harness]) -> None:
    org = small_org()
    users = [u for u in org.users if u.get("accountEnabled")]
    inner = {
        "id": "00000000-0000-0000-0000-00000000b001",
        "displayName": "Inner",
        "memberIds": [u["id"] for u in users[3:6]],
    }
    outer = {
        "id": "00000000-0000-0000-0000-00000000b002",
        "displayName": "Pilot",
        "memberIds": [u["id"] for u in users[:3]] + [inner["id"]],
    }
    org.groups += [inner, outer]
    h = make_harness(org, extra=scoped('nested = true\nsync_groups = "with_members"\n'))
    cycle(h)
    assert {u["userName"] for u in h.learnster.users.values()} == {
        u["userPrincipalName"] for u in users[:6]
    }
    names = {g["displayName"] for g in h.learnster.groups.values()}
    assert {"Inner", "Pilot"} <= names


@pytest.mark.slow
def test_ten_thousand_users_then_a_hundred_changes_read_and_send_only_the_delta(
    make_harness: Callable[..., Harness],
) -> None:
    org = generate_organisation(10_000, seed=21, groups=40)
    h = make_harness(org)
    cycle(h)
    users = [u for u in h.graph.users if u.get("accountEnabled")]
    for i, user in enumerate(users[:100]):
        h.graph.update_user(user["id"], jobTitle=f"Changed {i}")
    h.learnster.clear_requests()
    h.graph.clear_requests()
    store = Store(h.config.state_database)
    statements: list[str] = []
    store._raw.set_trace_callback(statements.append)  # observe the SQL the cycle runs
    try:
        with store.lock():
            report = asyncio.run(sync_once(h.config, store))
    finally:
        store.close()
    assert report.exit_code == ExitCode.OK
    requests = sent(h)
    assert len(requests) == 100
    # Reads come in batches: nothing is looked up one user at a time.
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) < 30, reads[:20]  # one per user would be 200 or more
    assert all(m == "PATCH" and p.startswith("/Users/") for m, p, _ in requests)
    graph_paths = [r.path for r in h.graph.requests]
    assert len(graph_paths) == 2  # one delta page per resource: 100 changes fit in one page
    assert all("delta" in p for p in graph_paths)


def test_users_and_groups_are_read_at_the_same_time(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(small_org())
    cycle(h)
    h.graph.latency_ms = 300  # one Graph round trip
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.update_user(user["id"], jobTitle="Read together")
    started = time.monotonic()
    requests = cycle(h)
    elapsed = time.monotonic() - started
    assert [(m, p) for m, p, _ in requests] == [
        ("PATCH", f"/Users/{scim_id(h, user['userPrincipalName'])}")
    ]
    assert sorted(r.path.rsplit("/", 2)[-2] for r in h.graph.requests) == ["groups", "users"]
    assert h.graph.server.peak_in_flight == 2
    assert elapsed < 2 * 0.3  # one round trip, not two in turn


def test_empty_delta_pages_with_a_next_link_are_followed(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(small_org())
    h.graph.empty_pages = True
    cycle(h)
    enabled = [u for u in h.graph.users if u.get("accountEnabled")]
    assert len(h.learnster.users) == len(enabled)
    assert h.graph.requests  # reset by cycle(); the read went through the empty pages
    user = enabled[0]
    h.graph.update_user(user["id"], jobTitle="After empty pages")
    assert [(m, p) for m, p, _ in cycle(h)] == [
        ("PATCH", f"/Users/{scim_id(h, user['userPrincipalName'])}")
    ]


def test_incremental_planning_plans_exactly_what_full_planning_plans(
    make_harness: Callable[..., Harness],
) -> None:
    """After a converged cycle only the records a delta touches are loaded and planned; for
    every kind of change, that must give the same operations as replanning everything."""
    import random

    from syncd.adapters.sqlite import Store
    from syncd.app.output import report_to_json

    h = make_harness(generate_organisation(80, seed=17))
    cycle(h)
    rng = random.Random(3)

    def plans() -> tuple[list[str], list[str]]:
        incremental = h.sync(dry_run=True)
        assert incremental.incremental
        store = Store(h.config.state_database)
        try:
            converged = store.ledger.converged()
            store.ledger.set_converged(None)  # force a plan over the whole directory
        finally:
            store.close()
        full = h.sync(dry_run=True)
        assert not full.incremental
        store = Store(h.config.state_database)
        try:
            store.ledger.set_converged(converged)
        finally:
            store.close()
        return operations(incremental), operations(full)

    def operations(report: Any) -> list[str]:
        return sorted(json.dumps(o, sort_keys=True) for o in report_to_json(report)["operations"])

    import json

    for step in range(8):
        users = [u for u in h.graph.users if u.get("accountEnabled")]
        managers = [u for u in users if any(h.graph.manager_of(x["id"]) == u["id"] for x in users)]
        picks = rng.sample(users, 4)
        h.graph.update_user(picks[0]["id"], jobTitle=f"Step {step}")
        h.graph.set_manager(picks[1]["id"], picks[2]["id"])
        h.graph.disable_user(picks[3]["id"])
        others = [m for m in managers if m not in picks]
        if others:
            h.graph.soft_delete_user(rng.choice(others)["id"])  # their reports lose a manager
        h.graph.add_user(
            {"userPrincipalName": f"hire{step}@contoso.example", "managerId": picks[2]["id"]}
        )
        group = rng.choice(h.graph.groups)
        h.graph.add_member(group["id"], picks[0]["id"]) if picks[0]["id"] not in h.graph.member_ids(
            group["id"]
        ) else None
        if step % 3 == 2:
            h.graph.rename_group(group["id"], f"Renamed {step}")
        incremental, full = plans()
        assert incremental == full, step
        assert incremental  # the step did change something
        report = h.sync()
        assert report.exit_code == ExitCode.OK, report.failures


def test_a_user_enabled_after_the_first_cycle_becomes_manager_and_member_at_once(
    make_harness: Callable[..., Harness],
) -> None:
    """Accounts made disabled and enabled on the first day: Learnster gets the user when the
    account is enabled, and in the same cycle the reports' manager and the user's tags (the
    delta of that day names only the user; make soak found the reports and tags left out)."""
    h = make_harness(generate_organisation(60, seed=3))
    users = h.graph.users
    managers = {h.graph.manager_of(u["id"]) for u in users} - {None}
    boss = next(
        u
        for u in users
        if u["id"] in managers
        and any(u["id"] in h.graph.member_ids(g["id"]) for g in h.graph.groups)
    )
    h.graph.disable_user(boss["id"])
    cycle(h)
    assert h.learnster.user_by_username(boss["userPrincipalName"]) is None
    assert h.sync().planned is False  # converged: the next delta could be planned in slices

    h.graph.enable_user(boss["id"])
    requests = cycle(h)
    boss_scim = scim_id(h, boss["userPrincipalName"])
    reports = [u for u in h.graph.users if h.graph.manager_of(u["id"]) == boss["id"]]
    tags = [g for g in h.graph.groups if boss["id"] in h.graph.member_ids(g["id"])]
    assert reports
    assert tags
    for report in reports:
        resource = h.learnster.user_by_username(report["userPrincipalName"])
        assert resource is not None
        assert resource[ENTERPRISE]["manager"]["value"] == boss_scim, report["userPrincipalName"]
    for group in tags:
        tag = h.learnster.group_by_external_id(group["id"])
        assert tag is not None
        assert boss_scim in {m["value"] for m in tag.get("members", [])}, group["displayName"]
    assert len(requests) == 1 + 1 + len(reports) + len(tags)  # lookup, POST, PATCHes
    assert cycle(h) == []
    assert cycle(h, full=True) == []  # a whole read finds nothing left to do


def test_a_non_ascii_upn_clash_in_a_delta_is_caught_as_in_a_full_plan(
    make_harness: Callable[..., Harness],
) -> None:
    """UPNs are compared by user_name_key() (full case folding) in Python and, through the
    stored key, in SQL: a new "max.straße@…" clashes with a linked "MAX.STRASSE@…" whichever
    way the plan is made (SQLite's lower() folds ASCII only, and let a delta's plan miss it)."""
    h = make_harness(users=20)
    first = h.graph.add_user({"userPrincipalName": "MAX.STRASSE@contoso.example"})
    assert h.sync().exit_code == ExitCode.OK
    assert h.sync().planned is False  # converged: the next delta is planned incrementally
    second = h.graph.add_user({"userPrincipalName": "max.straße@contoso.example"})
    h.learnster.clear_requests()
    report = h.sync()
    assert report.exit_code == ExitCode.OK
    [problem] = [p for p in report.problems if p.object_id == second]
    assert problem.message.endswith(f"is also the UPN of {first}: user skipped")
    assert [r for r in h.scim_requests() if r.method == "POST"] == []
    store = Store(h.config.state_database)
    try:
        assert second not in store.ledger.users()
        assert first in store.ledger.users()
    finally:
        store.close()


def _snapshot_of(h: Harness, user_id: str) -> dict[str, str]:
    store = Store(h.config.state_database)
    try:
        [(user, _)] = store.snapshot.users([user_id]).values()
        return dict(user.properties)
    finally:
        store.close()


def test_a_delta_is_saved_when_learnster_stops_the_cycle(
    make_harness: Callable[..., Harness],
) -> None:
    """A delta cycle saves its snapshot while its first requests are out; also when they fail."""
    h = make_harness(small_org())
    cycle(h)
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.update_user(user["id"], jobTitle="Saved anyway")
    h.learnster.fail_next(1, 401)
    report = h.sync()
    assert report.exit_code == ExitCode.AUTH
    assert report.incremental
    assert _snapshot_of(h, user["id"])["jobTitle"] == "Saved anyway"
    # The ledger, not the snapshot, says what Learnster holds: the update follows next cycle.
    assert [m for m, _, _ in cycle(h)] == ["PATCH"]
    resource = h.learnster.user_by_username(user["userPrincipalName"])
    assert resource is not None
    assert resource["title"] == "Saved anyway"


def test_a_delta_with_nothing_to_send_is_saved_too(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(small_org())
    cycle(h)
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.update_user(user["id"], businessPhones=[], mobilePhone=None, usageLocation="SE")
    cycle(h)
    # usageLocation only says how to read phone numbers: without any, nothing to send
    h.graph.update_user(user["id"], usageLocation="NO")
    assert cycle(h) == []
    assert _snapshot_of(h, user["id"])["usageLocation"] == "NO"
