"""Faults, crashes, escrow and quarantine: syncd loses nothing and duplicates no one."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from syncd.adapters.scim import ScimSink
from syncd.adapters.sqlite import Store
from syncd.credentials import Secret
from syncd.errors import ExitCode
from syncd.fakes.generator import generate_organisation
from syncd.fakes.learnster import FakeLearnster
from tests.conftest import GRAPH_TOKEN, LEARNSTER_TOKEN, Harness
from tests.helpers import CORE, run
from tests.test_sync_e2e import assert_user_matches


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
