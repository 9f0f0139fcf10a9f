"""``syncd demo``: the whole product on the built-in fake tenants, with no account and no network."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from syncd.adapters.sqlite import Store
from syncd.app.wiring import sync_once
from syncd.config import load_config
from syncd.core.mapping import ENTERPRISE_SCHEMA
from syncd.cycle.report import CycleReport
from syncd.errors import ExitCode
from syncd.fakes.generator import generate_organisation
from syncd.fakes.graph import FakeGraph
from syncd.fakes.graph.apps import LEARNSTER_APP_ID
from syncd.fakes.learnster import FakeLearnster

DEMO_TOKEN = "demo-learnster-token"  # noqa: S105 - the fake's own token, not a credential
DEMO_SECRET = "demo-graph-secret"  # noqa: S105
PERMISSIONS = {"User.Read.All", "GroupMember.Read.All", "Application.Read.All"}


def write_demo_config(directory: Path, graph: FakeGraph, learnster: FakeLearnster) -> Path:
    """A syncd.toml pointing at the two fakes (secrets go through the environment)."""
    path = directory / "syncd.toml"
    path.write_text(
        f"""
[graph]
tenant_id = "{graph.tenant_id}"
client_id = "{graph.client_id}"
auth = "client_secret"
base_url = "{graph.base_url}"
authority = "{graph.authority}"
ca_file = "{graph.ca_file or ""}"

[learnster]
tenant_url = "{learnster.base_url}"
max_concurrency = 8

[scope]
mode = "assigned"                 # the users and groups assigned to the Learnster app
application = "{LEARNSTER_APP_ID}"

[sync]
phone_default_region = "SE"

[state]
database = "{directory / "state.db"}"
""",
        encoding="utf-8",
    )
    return path


def describe_request(method: str, body: Any, names: dict[str, str]) -> str:
    """One line that says what a SCIM request did, with Learnster ids shown as names."""
    if not isinstance(body, dict):
        return ""
    if method == "POST":
        return str(body.get("userName") or body.get("displayName") or "")
    operations = body.get("Operations") or []
    parts = []
    for op in operations:
        value = op.get("value")
        if isinstance(value, list) and op.get("path") == "members":
            shown = f"{len(value)} members"
        elif isinstance(value, dict) and "value" in value:
            shown = names.get(str(value["value"]), str(value["value"]))
        else:
            shown = json.dumps(value, ensure_ascii=False) if value is not None else ""
        path = str(op.get("path", "")).replace(ENTERPRISE_SCHEMA + ":", "")
        if path.startswith("members[value eq"):
            member = path.split('"')[1]
            path, shown = "members", names.get(member, member)
        parts.append(f"{op.get('op')} {path} {shown}".strip())
    return "; ".join(parts)


def _names(learnster: FakeLearnster) -> dict[str, str]:
    names = {sid: str(u.get("userName", sid)) for sid, u in learnster.users.items()}
    names.update({sid: str(g.get("displayName", sid)) for sid, g in learnster.groups.items()})
    return names


def _sent_table(title: str, learnster: FakeLearnster, detail_limit: int) -> Table:
    requests = [r for r in learnster.requests if r.status]
    table = Table(title=title, title_justify="left")
    if len(requests) > detail_limit:
        counts = Counter(
            (r.method, "/" + r.path.strip("/").split("/")[0], r.status) for r in requests
        )
        table.add_column("request")
        table.add_column("status")
        table.add_column("count", justify="right")
        for (method, path, status), n in sorted(counts.items()):
            table.add_row(f"{method} {path}", str(status), str(n))
        return table
    names = _names(learnster)
    table.add_column("request")
    table.add_column("object")
    table.add_column("status")
    table.add_column("what")
    for r in requests:
        parts = r.path.strip("/").split("/")
        target = names.get(parts[1], parts[1]) if len(parts) > 1 else ""
        table.add_row(
            f"{r.method} /{parts[0]}",
            target,
            str(r.status),
            describe_request(r.method, r.body, names),
        )
    return table


def _change_tenant(graph: FakeGraph, console: Console, assigned: set[str]) -> None:
    """A promotion, a rename, a disabled user and a move between two assigned groups."""
    users = [u for u in graph.users if u.get("accountEnabled", True)]
    by_id = {u["id"]: u for u in users}
    promoted = next(u for u in users if graph.manager_of(u["id"]) and u.get("jobTitle"))
    old_manager = graph.manager_of(promoted["id"])
    new_manager = graph.manager_of(old_manager) if old_manager else None
    graph.update_user(promoted["id"], jobTitle=f"Head of {promoted.get('department') or 'Team'}")
    if new_manager:
        graph.set_manager(promoted["id"], new_manager)
    renamed = next(u for u in users if u["id"] != promoted["id"] and u.get("surname"))
    new_surname = f"{renamed['surname']}-Lind"
    graph.update_user(
        renamed["id"],
        surname=new_surname,
        displayName=f"{renamed.get('givenName', '')} {new_surname}".strip(),
    )
    disabled = next(u for u in users if u["id"] not in (promoted["id"], renamed["id"]))
    graph.disable_user(disabled["id"])
    groups = [g for g in graph.groups if graph.member_ids(g["id"]) and g["id"] in assigned]
    source, target = groups[0], groups[1]
    mover_id = next(m for m in graph.member_ids(source["id"]) if m in by_id and m != disabled["id"])
    graph.remove_member(source["id"], mover_id)
    graph.add_member(target["id"], mover_id)
    console.print("[bold]Changes in the fake Entra tenant:[/]")
    console.print(f"  promoted  {promoted['userPrincipalName']} (new title, manager one level up)")
    console.print(f"  renamed   {renamed['userPrincipalName']} → surname {new_surname}")
    console.print(f"  disabled  {disabled['userPrincipalName']}")
    console.print(
        f"  moved     {by_id[mover_id]['userPrincipalName']}: "
        f"{source['displayName']} → {target['displayName']}"
    )


def run_demo(*, users: int = 200, seed: int = 7, console: Console | None = None) -> int:
    """Start both fakes, run three cycles around a tenant change, show what was sent."""
    console = console or Console()
    # The demo prints problems itself; per-user log lines would drown the tables.
    logging.getLogger("syncd").setLevel(logging.ERROR)
    org = generate_organisation(users, seed=seed, guest_share=0.03)
    with (
        tempfile.TemporaryDirectory(prefix="syncd-demo-") as tmp,
        FakeGraph(org, tls=True, client_secret=DEMO_SECRET, permissions=PERMISSIONS) as graph,
        FakeLearnster(token=DEMO_TOKEN) as learnster,
    ):
        # Everyone works in an office: the office groups are assigned, and two people directly.
        offices = [g["id"] for g in graph.groups if g["displayName"].startswith("Office ")]
        graph.add_learnster_app(assign_groups=offices, assign_users=2)
        os.environ["SYNCD_GRAPH_CLIENT_SECRET"] = DEMO_SECRET
        os.environ["SYNCD_LEARNSTER_TOKEN"] = DEMO_TOKEN
        config = load_config(str(write_demo_config(Path(tmp), graph, learnster)))
        console.print(
            f"[bold]syncd demo[/]: fake Entra tenant with {len(org.users)} users and "
            f"{len(org.groups)} groups at {graph.base_url} (TLS, client-secret auth); "
            f"fake Learnster at {learnster.base_url}; scope: the {len(offices)} office groups "
            "and 2 users assigned to the Learnster app"
        )
        store = Store(config.state_database)
        exit_code = ExitCode.OK
        try:
            for number, title in enumerate(
                ("initial full cycle", "after the changes", "nothing changed"), start=1
            ):
                if number == 2:
                    _change_tenant(graph, console, set(offices))
                learnster.clear_requests()
                graph.clear_requests()
                with store.lock():
                    report = asyncio.run(sync_once(config, store))
                _show_cycle(console, number, title, report, learnster, len(graph.requests))
                exit_code = max(exit_code, report.exit_code)
        finally:
            store.close()
        console.print(
            f"Learnster now holds {len(learnster.users)} users "
            f"({sum(1 for u in learnster.users.values() if u.get('active'))} active) "
            f"and {len(learnster.groups)} tags."
        )
    return int(exit_code)


def _show_cycle(
    console: Console,
    number: int,
    title: str,
    report: CycleReport,
    learnster: FakeLearnster,
    graph_requests: int,
) -> None:
    sent = sum(1 for r in learnster.requests if r.status)
    console.rule(f"cycle {number}: {title}")
    console.print(
        f"{report.mode} read: {graph_requests} Graph requests · {sent} SCIM requests · "
        f"{report.summary()}"
    )
    if sent:
        console.print(_sent_table(f"Sent to Learnster in cycle {number}", learnster, 40))
    else:
        console.print("[green]nothing to send: Learnster already matches the directory[/]")
    for problem in report.problems[:5]:
        console.print(f"  warning {problem}", style="yellow", markup=False, soft_wrap=True)
    if len(report.problems) > 5:
        console.print(f"  … {len(report.problems) - 5} more warnings")
    if report.message:
        console.print(f"  {report.message}")
