"""Scope like Entra's: by assignment to the Learnster app, and by attribute scoping filters."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from syncd.app.cli import main
from syncd.errors import ExitCode
from syncd.fakes.generator import generate_organisation
from syncd.fakes.graph.apps import LEARNSTER_APP_ID
from syncd.fakes.scoping import COST_CENTER
from tests.conftest import Harness
from tests.test_sync_e2e import user_name_of

PERMISSIONS = {"User.Read.All", "GroupMember.Read.All", "Application.Read.All"}
ASSIGNED = f'[scope]\nmode = "assigned"\napplication = "{LEARNSTER_APP_ID}"\n'


def scoped_harness(make_harness: Callable[..., Harness], users: int = 1000) -> Harness:
    org = generate_organisation(users, seed=5, guest_share=0.03, scope_attributes=True)
    return make_harness(org, graph_options={"permissions": set(PERMISSIONS)})


def enabled(h: Harness) -> dict[str, dict[str, Any]]:
    return {u["id"]: u for u in h.graph.users if u.get("accountEnabled", True)}


def in_learnster(h: Harness, *, active: bool = True) -> set[str]:
    """The directory users Learnster holds (active ones, or inactive ones)."""
    by_name = {u["userName"].lower(): u for u in h.learnster.users.values()}
    return {
        uid
        for uid, user in {u["id"]: u for u in h.graph.users}.items()
        if (r := by_name.get(user_name_of(user).lower())) is not None and r["active"] is active
    }


def tag_ids(h: Harness) -> set[str]:
    return {str(g.get("externalId")) for g in h.learnster.groups.values()}


def test_the_users_and_groups_assigned_to_the_app_are_the_scope(
    make_harness: Callable[..., Harness],
) -> None:
    h = scoped_harness(make_harness)
    groups = sorted(
        (g for g in h.graph.groups if 5 <= len(h.graph.member_ids(g["id"])) <= 80),
        key=lambda g: g["id"],
    )[:2]
    members = {m for g in groups for m in h.graph.member_ids(g["id"])}
    direct = [uid for uid in sorted(enabled(h)) if uid not in members][:10]
    app = h.graph.add_learnster_app(assign_groups=[g["id"] for g in groups], assign_users=direct)
    h.reconfigure(ASSIGNED + '[sync]\nphone_default_region = "SE"\nmax_deletions = 1000\n')

    report = h.sync()
    assert report.exit_code == ExitCode.OK, report.failures
    expected = (members | set(direct)) & enabled(h).keys()
    assert in_learnster(h) == expected
    assert tag_ids(h) == {g["id"] for g in groups}

    # Unassign a group and a user: exactly those no longer in scope are deactivated.
    h.graph.unassign(app, groups[1]["id"])
    h.graph.unassign(app, direct[0])
    still = set(h.graph.member_ids(groups[0]["id"])) | set(direct[1:])
    left = expected - still
    h.reconfigure(ASSIGNED + f"[sync]\nmax_deletions = {len(left)}\nmax_deletion_percent = 0\n")
    held = h.sync()  # the tag's deletion is counted too: one over the guard
    assert held.exit_code == ExitCode.GUARD
    assert held.held == len(left) + 1
    assert h.sync(allow_deletions=True).exit_code == ExitCode.OK
    assert in_learnster(h) == expected & still
    assert in_learnster(h, active=False) == left
    assert tag_ids(h) == {groups[0]["id"]}


FILTERS = {
    "department or guest": (
        [
            [{"attribute": "department", "operator": "EQUALS", "value": "sales"}],
            [{"attribute": "userType", "operator": "EQUALS", "value": "Guest"}],
        ],
        lambda u: (u.get("department") or "").lower() == "sales" or u.get("userType") == "Guest",
    ),
    "regex on a directory extension": (
        [[{"attribute": COST_CENTER, "operator": "REGEX MATCH", "value": "CC41[0-4][0-9]"}]],
        lambda u: re.fullmatch("CC41[0-4][0-9]", u.get(COST_CENTER) or "") is not None,
    ),
    "is null on an extension attribute": (
        [
            [
                {
                    "attribute": "onPremisesExtensionAttributes.extensionAttribute7",
                    "operator": "IS NULL",
                }
            ]
        ],
        lambda u: not (u.get("onPremisesExtensionAttributes") or {}).get("extensionAttribute7"),
    ),
    "greater than on a number": (
        [
            [
                {
                    "attribute": "onPremisesExtensionAttributes.extensionAttribute3",
                    "operator": "GREATER THAN",
                    "value": 40,
                }
            ]
        ],
        lambda u: (
            float((u.get("onPremisesExtensionAttributes") or {}).get("extensionAttribute3") or 0)
            > 40
        ),
    ),
    "not includes a list": (
        [
            [
                {"attribute": "department", "operator": "NOT INCLUDES", "value": ["Sales", "HR"]},
                {"attribute": "userType", "operator": "NOT EQUALS", "value": "guest"},
            ]
        ],
        lambda u: (
            (u.get("department") or "").lower() not in ("sales", "hr")
            and u.get("userType") != "Guest"
        ),
    ),
}


def filter_toml(filters: list[list[dict[str, Any]]]) -> str:
    def inline(clause: dict[str, Any]) -> str:
        return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in clause.items()) + " }"

    return "".join(
        f"[[scope.filter]]\nclauses = [{', '.join(inline(c) for c in clauses)}]\n"
        for clauses in filters
    )


@pytest.mark.parametrize("name", list(FILTERS))
def test_attribute_scoping_filters_decide_who_is_provisioned(
    make_harness: Callable[..., Harness], name: str
) -> None:
    filters, expected = FILTERS[name]
    h = scoped_harness(make_harness, users=300)
    for i, user in enumerate(list(enabled(h).values())[:60]):
        h.graph.update_user(
            user["id"], onPremisesExtensionAttributes={"extensionAttribute3": str(i)}
        )
    h.reconfigure("[scope]\n" + filter_toml(filters))
    report = h.sync()
    assert report.exit_code == ExitCode.OK, report.failures
    wanted = {uid for uid, u in enabled(h).items() if expected(u)}
    assert wanted  # the case filters someone in ...
    assert wanted != set(enabled(h))  # ... and someone out
    assert in_learnster(h) == wanted
    assert in_learnster(h, active=False) == set()


def test_a_changed_filter_needs_no_reread_unless_it_reads_something_new(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = scoped_harness(make_harness, users=300)
    sales = [[{"attribute": "department", "operator": "EQUALS", "value": "Sales"}]]
    hr = [[{"attribute": "department", "operator": "EQUALS", "value": "HR"}]]
    h.reconfigure("[scope]\n" + filter_toml(sales) + "[sync]\nmax_deletions = 0\n")
    assert h.sync().exit_code == ExitCode.OK
    people = enabled(h)
    in_sales = {uid for uid, u in people.items() if u.get("department") == "Sales"}
    in_hr = {uid for uid, u in people.items() if u.get("department") == "HR"}
    assert in_learnster(h) == in_sales

    h.reconfigure("[scope]\n" + filter_toml(hr) + "[sync]\nmax_deletions = 0\n")
    h.graph.clear_requests()
    capsys.readouterr()
    assert main(["plan", "--json", "--config", str(h.config_path)]) == 0
    plan = json.loads(capsys.readouterr().out)
    why = {op["object"]: op.get("why", "") for op in plan["operations"]}
    some = next(iter(in_sales))
    assert "matches no [[scope.filter]]: [[scope.filter]] 1: department EQUALS 'HR'" in why[some]
    report = h.sync()
    assert report.exit_code == ExitCode.OK
    assert report.mode == "delta"  # the filter reads what was read before: no full read
    deltas = [r for r in h.graph.requests if r.path.endswith("/delta")]
    assert deltas
    assert all("$deltatoken" in r.query or "$skiptoken" in r.query for r in deltas)
    assert in_learnster(h) == in_hr
    assert in_learnster(h, active=False) == in_sales

    employees = [[{"attribute": "employeeType", "operator": "EQUALS", "value": "Employee"}]]
    h.reconfigure("[scope]\n" + filter_toml(employees) + "[sync]\nmax_deletions = 0\n")
    capsys.readouterr()
    assert main(["plan", "--config", str(h.config_path)]) == 0
    assert (
        "note: reading everything again: the configuration reads user properties the stored"
        " delta links do not (employeeType)" in " ".join(capsys.readouterr().out.split())
    )
    report = h.sync()
    assert report.mode == "full"
    assert any("employeeType" in note for note in report.notes)
    staff = {uid for uid, u in people.items() if u.get("employeeType") == "Employee"}
    assert in_learnster(h) == staff
    assert h.sync().mode == "delta"  # the new links select it: deltas again


def test_provision_says_why_a_user_is_out_of_scope(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = scoped_harness(make_harness, users=50)
    h.graph.add_learnster_app(assign_groups=[], assign_users=[])
    outsider = next(iter(enabled(h).values()))
    h.reconfigure(ASSIGNED)
    code = main(["provision", outsider["userPrincipalName"], "--config", str(h.config_path)])
    assert code == ExitCode.USAGE
    assert "is not assigned to the Learnster app, neither directly nor by a group" in (
        capsys.readouterr().err
    )
    hr = [[{"attribute": "department", "operator": "EQUALS", "value": "HR"}]]
    h.reconfigure("[scope]\n" + filter_toml(hr))
    someone = next(u for u in enabled(h).values() if u.get("department") not in ("HR", None))
    assert main(["provision", someone["userPrincipalName"], "--config", str(h.config_path)]) == 2
    assert (
        f"matches no [[scope.filter]]: [[scope.filter]] 1: department EQUALS 'HR' does not hold "
        f"(department is {someone['department']!r})" in capsys.readouterr().err
    )


def test_a_delta_in_an_assigned_and_filtered_scope_plans_as_the_whole_directory_would(
    make_harness: Callable[..., Harness],
) -> None:
    """The incremental plan of a delta (assigned groups' members joining and leaving, an
    attribute a filter reads changing) is exactly the plan over the whole directory."""
    import random

    from syncd.adapters.sqlite import Store
    from syncd.app.output import report_to_json

    h = scoped_harness(make_harness, users=200)
    groups = [g for g in h.graph.groups if len(h.graph.member_ids(g["id"])) >= 8][:3]
    app = h.graph.add_learnster_app(assign_groups=[g["id"] for g in groups[:2]], assign_users=8)
    guests_out = [[{"attribute": "userType", "operator": "NOT EQUALS", "value": "Guest"}]]
    h.reconfigure(ASSIGNED + "[sync]\nmax_deletions = 0\n" + filter_toml(guests_out))
    assert h.sync().exit_code == ExitCode.OK
    assert h.sync().planned is False
    rng = random.Random(4)

    def operations(report: Any) -> list[str]:
        return sorted(json.dumps(o, sort_keys=True) for o in report_to_json(report)["operations"])

    def both_ways() -> tuple[list[str], list[str]]:
        incremental = h.sync(dry_run=True)
        assert incremental.incremental
        store = Store(h.config.state_database)
        try:
            converged = store.ledger.converged()
            store.ledger.set_converged(None)
            full = h.sync(dry_run=True)
            assert not full.incremental
            store.ledger.set_converged(converged)
        finally:
            store.close()
        return operations(incremental), operations(full)

    for step in range(4):
        people = sorted(enabled(h))
        scoped = groups[step % 2]["id"]
        members = h.graph.member_ids(scoped)
        h.graph.remove_member(scoped, rng.choice(members))
        h.graph.add_member(scoped, rng.choice([p for p in people if p not in members]))
        h.graph.update_user(rng.choice(people), jobTitle=f"Step {step}")
        h.graph.update_user(rng.choice(members), userType="Guest")  # filtered out now
        h.graph.add_member(groups[2]["id"], rng.choice(people))  # not a scope group
        incremental, full = both_ways()
        assert incremental == full, step
        assert incremental
        assert h.sync().exit_code == ExitCode.OK
    assert app
