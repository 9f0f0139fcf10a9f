"""Faults, crashes and upgrades lose nothing and duplicate no one (issue 6)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from syncd.adapters.scim import ScimSink
from syncd.adapters.sqlite import SCHEMA_VERSION, Store
from syncd.adapters.sqlite.sql import get_meta
from syncd.credentials import Secret
from syncd.errors import ExitCode
from syncd.fakes.generator import generate_organisation
from syncd.fakes.learnster import FakeLearnster
from tests.conftest import GRAPH_TOKEN, LEARNSTER_TOKEN, Harness
from tests.helpers import CORE, run
from tests.test_sync_e2e import assert_user_matches

DATA = Path(__file__).parent / "data"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def test_server_errors_and_dropped_connections_are_retried_then_given_up() -> None:
    from syncd.errors import TransientError

    with FakeLearnster(token="t") as fake:
        fake.fail_next(1, 503)
        fake.drop_next(1)

        async def create(name: str) -> None:
            async with ScimSink(fake.base_url, Secret("t"), backoff_base=0.01) as sink:
                await sink.create_user({"schemas": [CORE], "userName": name})

        run(create("b@x.example"))
        assert fake.user_by_username("b@x.example") is not None
        fake.fail_next(10, 502)
        with pytest.raises(TransientError):
            run(create("c@x.example"))
        assert sum(1 for r in fake.requests if r.status == 502) == 5  # bounded attempts


def test_a_timeout_is_retried_and_the_conflict_resolved_by_adoption(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(users=8)
    h.edit_config("timeout_seconds = 10", "timeout_seconds = 0.5")
    h.learnster.slow_next(1, seconds=1.0)  # applied after 1 s, answered too late
    report = h.sync()
    assert report.exit_code == ExitCode.OK, report.failures
    names = [u["userName"].lower() for u in h.learnster.users.values()]
    assert len(names) == len(set(names)) == sum(1 for u in h.graph.users if u.get("accountEnabled"))


def test_escrow_backoff_grows_and_failed_objects_do_not_block_others(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(users=12)
    victim = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.learnster.reject(victim["userPrincipalName"], 400, detail="rejected")
    start = datetime.now(UTC)
    waits = []
    for minutes in (0, 6, 17, 38):
        now = start + timedelta(minutes=minutes)
        report = h.sync(now=now)
        assert report.exit_code == ExitCode.PARTIAL
        store = Store(h.config.state_database)
        try:
            [escrow] = store.ledger.escrows()
        finally:
            store.close()
        waits.append(round((escrow.next_retry_at.replace(tzinfo=UTC) - now).total_seconds() / 60))
        assert escrow.attempts == len(waits)
    assert waits[:3] == [5, 10, 20]
    assert waits[3] >= 40
    enabled = sum(1 for u in h.graph.users if u.get("accountEnabled"))
    assert len(h.learnster.users) == enabled - 1


def test_a_tag_whose_posted_members_are_refused_is_created_once_and_reported(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(users=12)
    assert h.sync().exit_code == ExitCode.OK
    gone, kept = [u for u in h.graph.users if u.get("accountEnabled")][:2]
    # Deleted in Learnster behind syncd's back: the ledger still links it.
    gone_id = h.learnster.user_by_username(gone["userPrincipalName"])["id"]
    with httpx.Client(base_url=h.learnster.base_url, verify=False) as client:
        response = client.delete(
            f"/Users/{gone_id}", headers={"Authorization": f"Bearer {LEARNSTER_TOKEN}"}
        )
        assert response.status_code == 204
    gid = h.graph.add_group({"displayName": "Late tag"}, member_ids=[gone["id"], kept["id"]])
    start = datetime.now(UTC)
    report = h.sync(now=start)
    assert report.exit_code == ExitCode.PARTIAL
    [(object_id, label, error)] = report.failures
    assert (object_id, label) == (gid, "Late tag")
    assert "tag created without its members" in error
    tags = [g for g in h.learnster.groups.values() if g.get("externalId") == gid]
    assert len(tags) == 1
    assert not tags[0].get("members")
    # Linked despite the failure: retrying never makes a second tag.
    h.learnster.clear_requests()
    h.sync(now=start + timedelta(hours=1))
    assert not [r for r in h.scim_requests() if (r.method, r.path) == ("POST", "/Groups")]
    assert len([g for g in h.learnster.groups.values() if g.get("externalId") == gid]) == 1


def test_quarantine_stops_sending_when_most_operations_fail(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(users=120)
    for user in h.graph.users:
        h.learnster.reject(user["userPrincipalName"], 400, detail="Learnster is broken today")
    report = h.sync()
    assert report.quarantined
    assert "quarantine" in report.message
    posts = [r for r in h.scim_requests() if r.method == "POST" and r.path == "/Users"]
    enabled = sum(1 for u in h.graph.users if u.get("accountEnabled"))
    assert 50 <= len(posts) < enabled
    assert report.outcomes["create_user"]["not sent (quarantine)"] == enabled - len(posts)


def expected_state(h: Harness) -> None:
    """Learnster holds exactly the directory: every user once, right values, right tags."""
    enabled = {u["id"]: u for u in h.graph.users if u.get("accountEnabled")}
    names = [u["userName"].lower() for u in h.learnster.users.values()]
    assert len(names) == len(set(names)), "a userName exists twice"
    assert len(names) == len(enabled)
    scim = {}
    for uid, user in enabled.items():
        resource = h.learnster.user_by_username(user["userPrincipalName"])
        assert resource is not None
        assert_user_matches(user, resource)
        scim[uid] = resource["id"]
    for group in h.graph.groups:
        tag = h.learnster.group_by_external_id(group["id"])
        assert tag is not None
        members = {m["value"] for m in tag.get("members", [])}
        assert members == {scim[m] for m in h.graph.member_ids(group["id"]) if m in enabled}
    tags = [g["externalId"] for g in h.learnster.groups.values()]
    assert len(tags) == len(set(tags)), "a tag exists twice"


@pytest.mark.slow
def test_ten_percent_faults_converge_within_three_cycles(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(generate_organisation(2000, seed=31))
    h.edit_config("timeout_seconds = 10", "timeout_seconds = 0.5")
    h.learnster.fault_rate = 0.10
    h.learnster.slow_seconds = 0.8  # slower than the 0.5 s timeout, applied all the same
    h.learnster.retry_after_seconds = 0.05
    now = datetime.now(UTC)
    for cycle in range(3):
        report = h.sync(now=now + timedelta(days=cycle))  # past any escrow backoff
        if report.exit_code == ExitCode.OK and not report.failures:
            break
    h.learnster.fault_rate = 0.0
    faults = {r.fault for r in h.learnster.requests if r.fault}
    assert len(faults) >= 4  # 429, 5xx, dropped, slow all happened
    expected_state(h)


@pytest.mark.slow
def test_sigkill_at_five_random_moments_loses_and_duplicates_nothing(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(generate_organisation(3000, seed=41))
    h.learnster.latency_ms = 5
    env = dict(
        os.environ, SYNCD_GRAPH_ACCESS_TOKEN=GRAPH_TOKEN, SYNCD_LEARNSTER_TOKEN=LEARNSTER_TOKEN
    )
    rng = random.Random(5)
    enabled = sum(1 for u in h.graph.users if u.get("accountEnabled"))
    # One kill early (during the Graph read or the listing), four when Learnster holds a
    # random number of the users: always in the middle of something.
    moments = [("seconds", rng.uniform(0.5, 1.5))] + [
        ("users", n) for n in sorted(rng.sample(range(200, enabled - 200), 4))
    ]
    kills = 0
    for kind, value in moments:
        process = subprocess.Popen(
            [sys.executable, "-m", "syncd", "sync", "--config", str(h.config_path)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + (value if kind == "seconds" else 120)
        while process.poll() is None and time.monotonic() < deadline:
            if kind == "users" and len(h.learnster.users) >= value:
                break
            time.sleep(0.005)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills == 5  # every run really was cut short
    report = h.sync()
    assert report.exit_code == ExitCode.OK, report.failures
    expected_state(h)
    h.learnster.clear_requests()
    assert h.sync().exit_code == ExitCode.OK
    assert h.scim_requests() == []


def test_an_upgrade_from_schema_1_keeps_links_escrows_and_delta_links(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    with sqlite3.connect(database) as db:
        db.executescript((DATA / "schema_v1.sql").read_text())
        db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        db.execute(
            "INSERT INTO ledger_user VALUES ('u1', 'scim-1', ?, 0, '2026-11-01 00:00:00.000000')",
            (json.dumps({"userName": "a@x.example", "active": True}),),
        )
        db.execute(
            "INSERT INTO ledger_group VALUES ('g1', 'scim-g1', 'Sales', ?, "
            "'2026-11-01 00:00:00.000000')",
            (json.dumps(["u1", "u2"]),),
        )
        db.execute(
            "INSERT INTO escrow VALUES ('u2', 'user', 'b@x.example', 'create_user', 'bad phone', "
            "3, '2026-11-01 00:00:00.000000', '2026-11-02 00:00:00.000000')"
        )
        db.execute(
            "INSERT INTO delta_link VALUES ('users', 'https://graph/users/delta?t=1', "
            "'2026-11-01 00:00:00.000000')"
        )
    store = Store(str(database))
    try:
        assert get_meta(store._raw, "schema_version") == str(SCHEMA_VERSION)
        assert store.ledger.users()["u1"].scim_id == "scim-1"
        group = store.ledger.groups()["g1"]
        assert (group.scim_id, group.display_name, group.members) == (
            "scim-g1",
            "Sales",
            frozenset({"u1", "u2"}),
        )
        [escrow] = store.ledger.escrows()
        assert (escrow.object_id, escrow.error, escrow.attempts) == ("u2", "bad phone", 3)
        assert store.snapshot.delta_links() == {"users": "https://graph/users/delta?t=1"}
    finally:
        store.close()
    columns = [r[1] for r in sqlite3.connect(database).execute("PRAGMA table_info(ledger_group)")]
    assert "members" not in columns
    Store(str(database)).close()  # opening again is a no-op


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    from syncd.errors import ConfigError

    database = tmp_path / "state.db"
    Store(str(database)).close()
    with sqlite3.connect(database) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(ConfigError, match="schema version 99, newer than this syncd knows"):
        Store(str(database))


def test_the_store_knows_every_table_the_schema_defines() -> None:
    from syncd.adapters import sqlite
    from syncd.adapters.sqlite import schema

    assert sqlite.TABLES == schema.TABLES


_OPEN_AND_REPORT = """
import sys
import syncd.app.cli
from syncd.adapters.sqlite import Store

store = Store(sys.argv[1])
store.ledger.set_converged("probe")
store.close()
print(sorted(m for m in sys.modules if m.split(".")[0] in ("sqlalchemy", "sqlmodel")))
"""


def test_a_cycle_on_an_existing_database_does_not_load_sqlalchemy(tmp_path: Path) -> None:
    # SQLAlchemy is a third of a small cycle's start-up; only creating tables needs it.
    database = tmp_path / "state.db"
    Store(str(database)).close()
    done = subprocess.run(
        [sys.executable, "-c", _OPEN_AND_REPORT, str(database)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]"
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'converged'").fetchone() == ("probe",)


_SYNC_AND_REPORT = """
import json, sys
from syncd.app.cli import main
code = main(["sync", "--json", "--config", sys.argv[1]])
heavy = ("rich", "sqlalchemy", "sqlmodel", "tenacity", "prometheus_client")
print(json.dumps([code, sorted({m.split(".")[0] for m in sys.modules} & set(heavy))]), file=sys.stderr)
"""


def test_a_delta_sync_with_json_output_loads_only_what_it_needs(
    make_harness: Callable[..., Harness],
) -> None:
    # Start-up is a tenth of a small delta cycle: no progress bars, tables, ORM or retry
    # machinery unless they are used.
    h = make_harness(users=20)
    assert h.sync().exit_code == ExitCode.OK
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.update_user(user["id"], jobTitle="Light start")
    done = subprocess.run(
        [sys.executable, "-c", _SYNC_AND_REPORT, str(h.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    code, loaded = json.loads(done.stderr.strip().splitlines()[-1])
    assert json.loads(done.stdout)["scim_requests"] == {"PATCH /Users": 1}
    assert (code, loaded) == (0, [])


def test_a_database_missing_a_table_gets_it_back(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    Store(str(database)).close()
    with sqlite3.connect(database) as db:
        db.execute("DROP TABLE create_intent")
    store = Store(str(database))
    try:
        store.ledger.record_intent("u1", "a@x.example")
        assert store.ledger.intents() == {"u1": "a@x.example"}
    finally:
        store.close()


def test_the_provisioning_log_keeps_thirty_days(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "state.db"))
    try:
        old, recent = store.runs.start("full", False), store.runs.start("delta", False)
        store.runs.append(old, [("u1", "a@x.example", "create_user", "created", "")])
        store.runs.append(recent, [("u2", "b@x.example", "update_user", "updated", "")])
        long_ago = (datetime.now(UTC) - timedelta(days=31)).strftime("%Y-%m-%d %H:%M:%S.%f")
        with sqlite3.connect(tmp_path / "state.db") as db:
            db.execute("UPDATE run SET started_at = ? WHERE id = ?", (long_ago, old))
        store.runs.start("delta", False)
        assert [entry.object_id for entry in store.runs.entries()] == ["u2"]
        assert [entry.operation for entry in store.runs.entries(object_key="b@x.example")] == [
            "update_user"
        ]
    finally:
        store.close()


def _plan_of_last_query(store: Store, query: Callable[[], object]) -> str:
    """SQLite's query plan for the last statement ``query`` runs on the store's connection."""
    statements: list[str] = []
    store._raw.set_trace_callback(statements.append)
    try:
        query()
    finally:
        store._raw.set_trace_callback(None)
    return str(store._raw.execute(f"EXPLAIN QUERY PLAN {statements[-1]}").fetchall())


def test_upn_lookups_use_an_index_and_the_unused_one_is_gone(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    Store(str(database)).close()
    with sqlite3.connect(database) as db:  # as databases made by earlier versions have it
        db.execute("CREATE INDEX ix_snapshot_user_upn ON snapshot_user (upn)")
    store = Store(str(database))
    try:
        plan = _plan_of_last_query(store, lambda: store.snapshot.ids_by_user_name({"A@x.example"}))
        assert "USING INDEX ix_snapshot_user_upn_key" in plan
        indexes = {row[0] for row in store._raw.execute("SELECT name FROM sqlite_master")}
        assert "ix_snapshot_user_upn" not in indexes
        assert "ix_snapshot_user_upn_lower" not in indexes
    finally:
        store.close()


def test_the_reports_of_a_hire_or_leaver_are_found_through_an_index(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    Store(str(database)).close()
    with sqlite3.connect(database) as db:  # as databases made before the index have it
        db.execute("DROP INDEX ix_snapshot_user_manager")
    store = Store(str(database))  # puts it back
    try:
        found: list[set[str]] = []
        plan = _plan_of_last_query(store, lambda: found.append(store.snapshot.reports_of({"m1"})))
        assert found == [set()]
        assert "USING INDEX ix_snapshot_user_manager" in plan
    finally:
        store.close()
