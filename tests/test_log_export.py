"""``syncd status --log --format jsonl|csv``: the provisioning log exported, read back and held
against what Learnster was sent; --user, --since, and what the options refuse."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from syncd.adapters.memory import MemoryRunLog
from syncd.app.cli import main
from syncd.app.export import COLUMNS, PAGE, export_log
from syncd.errors import ExitCode
from syncd.ports import LogFilter, LogLine
from tests.conftest import Harness

CSV_HEADER = "time,cycle,object_id,object_name,operation,result,error,changes"


def status(h: Harness, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """What `syncd status ARGS` writes on stdout (it must succeed)."""
    capsys.readouterr()
    assert main(["status", *args, "--config", str(h.config_path)]) == 0
    return capsys.readouterr().out


def csv_rows(out: str) -> list[dict[str, str]]:
    assert out.startswith(CSV_HEADER + "\n")  # the export alone: no status, no markup
    reader = csv.DictReader(io.StringIO(out))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    return list(reader)


def jsonl_rows(out: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in out.splitlines()]
    assert all(list(row) == list(COLUMNS) for row in rows)
    return rows


def synced_with_a_failure(
    make_harness: Callable[..., Harness],
) -> tuple[Harness, dict[str, Any]]:
    h = make_harness(users=12)
    victim = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.learnster.reject(victim["userPrincipalName"], 400, detail="name too long")
    assert main(["sync", "--config", str(h.config_path)]) == ExitCode.PARTIAL
    return h, victim


def test_the_export_is_every_operation_as_it_was_sent(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h, victim = synced_with_a_failure(make_harness)
    rows = csv_rows(status(h, capsys, "--log", "--format", "csv"))
    assert jsonl_rows(status(h, capsys, "--log", "--format", "jsonl")) == [
        {
            **row,
            "cycle": int(row["cycle"]),
            "changes": json.loads(row["changes"]),
        }
        for row in rows
    ]
    assert [row["time"] for row in rows] == sorted(row["time"] for row in rows)  # oldest first
    assert {row["cycle"] for row in rows} == {"1"}
    assert all(datetime.fromisoformat(row["time"]).tzinfo == UTC for row in rows)

    users = {row["object_id"]: row for row in rows if row["operation"] == "create_user"}
    enabled = {u["id"]: u for u in h.graph.users if u.get("accountEnabled")}
    assert set(users) == set(enabled)
    posts = [r for r in h.learnster.requests if (r.method, r.path) == ("POST", "/Users")]
    created = {r.body["userName"]: r.body for r in posts if r.status == 201}
    assert len(created) == len(enabled) - 1
    for graph_id, row in users.items():
        upn = enabled[graph_id]["userPrincipalName"]
        assert row["object_name"] == upn
        changes = json.loads(row["changes"])
        assert all(old is None for old, _new in changes.values())
        if graph_id == victim["id"]:
            assert (row["result"], row["error"]) == ("failed", "name too long")
            assert changes["userName"] == [None, upn]
            continue
        sent = created[upn]
        assert (row["result"], row["error"]) == ("created", "")
        assert changes["userName"] == [None, sent["userName"]]
        assert changes["displayName"] == [None, sent["displayName"]]
        assert changes["name.givenName"] == [None, sent["name"]["givenName"]]
        assert changes.get("title", [None, None])[1] == sent.get("title")

    tags = [row for row in rows if row["operation"] == "create_group"]
    names = {g["displayName"] for g in h.learnster.groups.values()}
    assert {json.loads(row["changes"])["displayName"][1] for row in tags} == names
    assert all(row["object_name"] for row in tags)


def test_user_and_since_filter_the_export(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h, victim = synced_with_a_failure(make_harness)
    user = next(u for u in h.graph.users if u.get("accountEnabled") and u["id"] != victim["id"])
    old_upn = user["userPrincipalName"]
    new_upn = "renamed." + old_upn
    h.graph.update_user(user["id"], jobTitle="Exported", userPrincipalName=new_upn)
    assert main(["sync", "--config", str(h.config_path)]) == ExitCode.OK
    patches = [r for r in h.scim_requests() if r.method == "PATCH" and r.path.startswith("/Users/")]
    [patch] = [r.body["Operations"] for r in patches]

    # The UPN the user holds now finds their lines under the earlier one too, in any case.
    for args in (["--user", new_upn.upper()], [f"--log={new_upn}"], ["--user", user["id"]]):
        rows = jsonl_rows(status(h, capsys, "--log", *args, "--format", "jsonl"))
        assert [(r["cycle"], r["operation"], r["object_name"]) for r in rows] == [
            (1, "create_user", old_upn),
            (2, "update_user", new_upn),
        ]
    sent = {operation["path"]: operation["value"] for operation in patch}
    assert {path: new for path, (_old, new) in rows[1]["changes"].items()} == sent
    assert rows[1]["changes"]["title"][0] == user.get("jobTitle")
    rows = csv_rows(status(h, capsys, "--log", "--user", old_upn, "--format", "csv"))
    assert [row["operation"] for row in rows] == ["create_user"]  # the label as it was logged
    assert (
        csv_rows(status(h, capsys, "--log", "--user", "nobody@x.example", "--format", "csv")) == []
    )

    everything = jsonl_rows(status(h, capsys, "--log", "--format", "jsonl"))
    second = [row for row in everything if row["cycle"] == 2]
    since = datetime.fromisoformat(second[0]["time"])
    for moment in (since.isoformat(), since.astimezone(timezone(timedelta(hours=1))).isoformat()):
        rows = jsonl_rows(status(h, capsys, "--log", "--since", moment, "--format", "jsonl"))
        assert rows == second
    naive = since.replace(tzinfo=None).isoformat()  # UTC
    assert jsonl_rows(status(h, capsys, "--log", "--since", naive, "--format", "jsonl")) == second
    today = since.date().isoformat()
    assert jsonl_rows(status(h, capsys, "--log", "--since", today, "--format", "jsonl")) == (
        everything
    )
    tomorrow = (since + timedelta(days=1)).date().isoformat()
    assert status(h, capsys, "--log", "--since", tomorrow, "--format", "jsonl") == ""
    assert (
        csv_rows(status(h, capsys, "--log", "--since", "2999-01-01T00:00", "--format", "csv")) == []
    )


def test_text_keeps_the_latest_lines_with_the_status_filtered_alike(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h, victim = synced_with_a_failure(make_harness)
    out = status(h, capsys, "--log", "--user", victim["userPrincipalName"].upper())
    assert "Provisioning log (1 latest; lines are kept 30 days, [state] log_days)" in out
    assert f"create_user {victim['userPrincipalName']} ({victim['id']}): failed" in out
    assert "deletion guard: clear" in out  # the rest of the status, as before
    out = status(h, capsys, "--log", "--since", "2999-01-01", "--format", "text")
    assert "Provisioning log (0 latest;" in out
    document = json.loads(status(h, capsys, "--json", "--log", "--user", victim["id"]))
    [line] = document["log"]
    assert (line["object_id"], line["outcome"], line["detail"]) == (
        victim["id"],
        "failed",
        "name too long",
    )
    assert line["changes"]["userName"] == [None, victim["userPrincipalName"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--log", "--since", "yesterday"],
            "argument --since: 'yesterday' is not an ISO 8601 date or date and time, e.g. "
            "2026-11-30 or 2026-11-30T12:00",
        ),
        (["--log", "--since", "2026-13-01"], "argument --since: '2026-13-01' is not an ISO"),
        (
            ["--log", "--format", "xml"],
            "argument --format: invalid choice: 'xml' (choose from 'text', 'jsonl', 'csv')",
        ),
        (["--format", "csv"], "--format needs --log"),
        (["--user", "a@x.example"], "--user needs --log"),
        (["--since", "2026-11-30"], "--since needs --log"),
        (["--log", "--json", "--format", "jsonl"], "--format and --json are two output formats"),
        (["--log", "--format", "csv", "--drift"], "--format csv exports the log alone"),
        (["--log", "a@x.example", "--user", "b@x.example"], "name two objects: use one"),
    ],
)
def test_what_the_log_options_refuse_is_a_usage_error(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["status", *args])
    assert caught.value.code == ExitCode.USAGE
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_the_help_says_how_long_the_log_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["status", "--help"])
    assert "Lines are kept [state] log_days days (default 30)" in " ".join(
        capsys.readouterr().out.split()
    )


def test_an_export_reads_the_log_in_pages_and_writes_every_line_in_order() -> None:
    runs = MemoryRunLog()
    first = runs.start("full", dry_run=False)
    total = PAGE * 2 + 5
    runs.append(
        first, [LogLine(f"u{n}", f"u{n}", "delete_user", "deleted", "", "{}") for n in range(total)]
    )
    second = runs.start("delta", dry_run=False)
    runs.append(
        second, [LogLine("g1", "Sales", "rename_group", "updated", "", '{"displayName":["A","B"]}')]
    )
    out = io.StringIO()

    assert export_log(runs, LogFilter(), "csv", out) == total + 1
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [row["object_id"] for row in rows] == [*(f"u{n}" for n in range(total)), "g1"]
    assert rows[0]["object_name"] == ""  # the label was the id: no name was known
    assert (rows[-1]["cycle"], rows[-1]["object_name"], rows[-1]["changes"]) == (
        str(second),
        "Sales",
        '{"displayName":["A","B"]}',
    )
    out = io.StringIO()
    assert export_log(runs, LogFilter(frozenset({"u1500", "Sales"})), "jsonl", out) == 2
    assert [json.loads(line)["object_id"] for line in out.getvalue().splitlines()] == [
        "u1500",
        "g1",
    ]
