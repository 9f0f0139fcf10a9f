"""The LedgerRepository contract, over both adapters: links, acknowledged state, escrows."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from syncd.core.ledger import LedgerGroup, LedgerUser
from syncd.ports import LedgerRepository
from tests.contract.conftest import ADAPTERS, open_store

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture(params=ADAPTERS)
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerRepository]:
    with open_store(request.param, tmp_path) as store:
        yield store.ledger


def linked(scim_id: str, **attrs: object) -> LedgerUser:
    return LedgerUser(scim_id, {"userName": f"{scim_id}@x.example", **attrs})


def fail(
    ledger: LedgerRepository,
    object_id: str,
    now: datetime | None = None,
    retry_after: float | None = None,
    error: str = "500 Internal Server Error",
) -> None:
    """Escrow a failed update of a user."""
    label = f"{object_id}@x.example"
    ledger.escrow(object_id, "user", label, "update", error, retry_after, now=now)


def escrowed(ledger: LedgerRepository) -> list[str]:
    return [e.object_id for e in ledger.escrows()]


def naive_utc(moment: datetime) -> datetime:
    """How escrows hand out their times: UTC without an offset."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def test_a_new_ledger_is_empty(ledger: LedgerRepository) -> None:
    assert ledger.users() == {}
    assert ledger.groups() == {}
    assert ledger.scim_ids() == {}
    assert ledger.user_count() == 0
    assert ledger.escrows() == []
    assert ledger.deferred(NOW) == set()
    assert ledger.intents() == {}
    assert ledger.converged() is None
    assert ledger.groups_in_doubt() == []
    assert ledger.counts() == {"users_linked": 0, "groups_linked": 0, "escrows": 0}


# -- users ------------------------------------------------------------------------------------


def test_put_user_links_a_user_every_lookup_sees(ledger: LedgerRepository) -> None:
    ann, bob = linked("s-ann", active=True, title="Ann"), linked("s-bob", active=False)
    ledger.put_user("ann", ann)
    ledger.put_user("bob", bob, adopted=True)

    assert ledger.users() == {"ann": ann, "bob": bob}
    assert ledger.users_for(["bob", "nobody"]) == {"bob": bob}
    assert ledger.users_for([]) == {}
    assert ledger.scim_ids() == {"ann": "s-ann", "bob": "s-bob"}
    assert (ledger.scim_id_of("ann"), ledger.scim_id_of("nobody")) == ("s-ann", None)
    assert (ledger.graph_id_of("s-bob"), ledger.graph_id_of("s-nobody")) == ("bob", None)
    assert ledger.graph_ids_of(["s-bob", "s-nobody", "s-ann"]) == {"s-bob": "bob", "s-ann": "ann"}
    assert ledger.graph_ids_of([]) == {}
    assert ledger.attrs_of("ann") == {"userName": "s-ann@x.example", "active": True, "title": "Ann"}
    assert ledger.attrs_of("nobody") is None
    assert ledger.user_count() == 2
    assert ledger.linked_among(["bob", "nobody", "ann"]) == {"ann", "bob"}
    assert ledger.linked_among(["nobody"]) == set()
    assert not ledger.users()["bob"].active


def test_put_user_again_replaces_the_acknowledged_entry(ledger: LedgerRepository) -> None:
    ledger.put_user("ann", linked("s-old", title="Old"), adopted=True)
    ledger.put_user("ann", linked("s-new", title="New"))

    assert ledger.users() == {"ann": linked("s-new", title="New")}
    assert ledger.graph_id_of("s-old") is None
    assert ledger.graph_id_of("s-new") == "ann"
    assert ledger.graph_ids_of(["s-old", "s-new"]) == {"s-new": "ann"}
    assert ledger.attrs_of("ann") == {"userName": "s-new@x.example", "title": "New"}
    assert ledger.user_count() == 1


def test_entries_put_and_handed_out_are_not_shared_with_the_ledger(
    ledger: LedgerRepository,
) -> None:
    entry = linked("s-ann", title="Ann")
    ledger.put_user("ann", entry)
    entry.scim_id = "s-changed"
    ledger.users()["ann"].scim_id = "s-changed"
    ledger.users_for(["ann"])["ann"].scim_id = "s-changed"
    ledger.attrs_of("ann")["title"] = "Changed"

    assert ledger.users() == {"ann": linked("s-ann", title="Ann")}
    assert ledger.graph_id_of("s-ann") == "ann"


def test_put_user_clears_that_users_escrow_and_create_intent(ledger: LedgerRepository) -> None:
    for uid in ("ann", "bob"):
        ledger.record_intent(uid, f"{uid}@x.example")
        fail(ledger, uid, now=NOW)

    ledger.put_user("ann", linked("s-ann"))

    assert ledger.intents() == {"bob": "bob@x.example"}
    assert escrowed(ledger) == ["bob"]
    assert ledger.deferred(NOW) == {"bob"}


def test_drop_user_removes_its_link_memberships_and_escrow(ledger: LedgerRepository) -> None:
    ledger.put_user("ann", linked("s-ann"))
    ledger.put_user("bob", linked("s-bob"))
    for gid in ("g1", "g2"):
        ledger.put_group(gid, f"s-{gid}", gid)
        ledger.add_members(gid, ["ann", "bob"])
    fail(ledger, "ann")
    fail(ledger, "bob")

    ledger.drop_user("ann")
    ledger.drop_user("nobody")

    assert ledger.users() == {"bob": linked("s-bob")}
    assert ledger.scim_id_of("ann") is None
    assert ledger.groups() == {
        "g1": LedgerGroup("s-g1", "g1", frozenset({"bob"})),
        "g2": LedgerGroup("s-g2", "g2", frozenset({"bob"})),
    }
    assert escrowed(ledger) == ["bob"]
    assert ledger.counts() == {"users_linked": 1, "groups_linked": 2, "escrows": 1}


# -- groups -----------------------------------------------------------------------------------


def test_put_group_again_renames_and_keeps_the_members(ledger: LedgerRepository) -> None:
    ledger.put_group("g1", "s-g1", "Sales")
    ledger.add_members("g1", ["ann", "bob"])

    ledger.put_group("g1", "s-g1b", "Sales (EMEA)")

    assert ledger.groups() == {
        "g1": LedgerGroup("s-g1b", "Sales (EMEA)", frozenset({"ann", "bob"}))
    }


def test_members_are_added_and_removed_as_sets(ledger: LedgerRepository) -> None:
    ledger.put_group("g1", "s-g1", "One")
    ledger.put_group("g2", "s-g2", "Two")
    ledger.add_members("g1", ["ann", "bob"])
    ledger.add_members("g1", ["bob", "cy"])
    ledger.add_members("g2", ["ann"])

    ledger.remove_members("g1", ["ann", "nobody"])
    ledger.remove_members("g1", [])

    assert ledger.groups_for(["g1", "nothing"]) == {
        "g1": LedgerGroup("s-g1", "One", frozenset({"bob", "cy"}))
    }
    assert ledger.groups_for(["g2"]) == {"g2": LedgerGroup("s-g2", "Two", frozenset({"ann"}))}
    assert ledger.groups_for([]) == {}


def test_drop_group_forgets_it_and_its_members(ledger: LedgerRepository) -> None:
    ledger.put_group("g1", "s-g1", "One")
    ledger.put_group("g2", "s-g2", "Two")
    ledger.add_members("g1", ["ann"])
    ledger.add_members("g2", ["ann"])

    ledger.drop_group("g1")
    ledger.drop_group("nothing")

    assert ledger.groups() == {"g2": LedgerGroup("s-g2", "Two", frozenset({"ann"}))}
    ledger.put_group("g1", "s-g1", "One")  # created again: no members left over
    assert ledger.groups_for(["g1"]) == {"g1": LedgerGroup("s-g1", "One", frozenset())}


GROUP_WRITES: dict[str, Callable[[LedgerRepository, str], None]] = {
    "put_group": lambda ledger, gid: ledger.put_group(gid, f"s-{gid}", gid),
    "add_members": lambda ledger, gid: ledger.add_members(gid, ["ann"]),
    "remove_members": lambda ledger, gid: ledger.remove_members(gid, ["ann"]),
    "drop_group": lambda ledger, gid: ledger.drop_group(gid),
}


@pytest.mark.parametrize("write", GROUP_WRITES.values(), ids=GROUP_WRITES.keys())
def test_an_acknowledged_group_write_clears_that_groups_escrow(
    ledger: LedgerRepository, write: Callable[[LedgerRepository, str], None]
) -> None:
    for gid in ("g1", "g2"):
        ledger.put_group(gid, f"s-{gid}", gid)
        ledger.escrow(gid, "group", gid, "update", "409 Conflict", now=NOW)

    write(ledger, "g1")

    assert escrowed(ledger) == ["g2"]
    assert ledger.deferred(NOW) == {"g2"}


def test_forget_links_forgets_every_user_group_and_member(ledger: LedgerRepository) -> None:
    ledger.put_user("ann", linked("s-ann"))
    ledger.put_group("g1", "s-g1", "One")
    ledger.add_members("g1", ["ann"])
    ledger.add_members("g2", ["ann"])  # members of a group not recorded yet
    fail(ledger, "bob")
    ledger.record_intent("cy", "cy@x.example")

    ledger.forget_links()

    assert (ledger.users(), ledger.groups(), ledger.user_count()) == ({}, {}, 0)
    ledger.put_group("g2", "s-g2", "Two")
    assert ledger.groups() == {"g2": LedgerGroup("s-g2", "Two", frozenset())}
    # escrows and create intents are not links: they stay
    assert escrowed(ledger) == ["bob"]
    assert ledger.intents() == {"cy": "cy@x.example"}


# -- escrow -----------------------------------------------------------------------------------


def test_escrow_backs_off_doubling_from_five_minutes_to_a_day(ledger: LedgerRepository) -> None:
    waits = [5, 10, 20, 40, 80, 160, 320, 640, 1280, 1440, 1440]  # minutes
    first_failed = None
    for attempt, wait in enumerate(waits, start=1):
        now = NOW + attempt * timedelta(hours=1)
        fail(ledger, "ann", now=now, error=f"failure {attempt}")

        (escrow,) = ledger.escrows()
        first_failed = first_failed or escrow.first_failed_at
        assert escrow.attempts == attempt
        assert escrow.first_failed_at == first_failed
        assert escrow.next_retry_at == naive_utc(now + wait * MINUTE)
        assert escrow.error == f"failure {attempt}"  # the latest failure is shown
    assert first_failed is not None
    assert first_failed.tzinfo is None


def test_escrow_records_what_failed(ledger: LedgerRepository) -> None:
    ledger.escrow("g1", "group", "Sales", "create", "400 Bad Request", now=NOW)

    (escrow,) = ledger.escrows()

    assert (escrow.object_id, escrow.object_type, escrow.label) == ("g1", "group", "Sales")
    assert (escrow.operation, escrow.error, escrow.attempts) == ("create", "400 Bad Request", 1)
    assert escrow.next_retry_at == naive_utc(NOW + 5 * MINUTE)


def test_a_retry_after_longer_than_the_backoff_wins(ledger: LedgerRepository) -> None:
    fail(ledger, "ann", now=NOW, retry_after=3600.0)
    fail(ledger, "bob", now=NOW, retry_after=60.0)  # shorter: the backoff stands

    retries = {e.object_id: e.next_retry_at for e in ledger.escrows()}

    assert retries == {"ann": naive_utc(NOW + 60 * MINUTE), "bob": naive_utc(NOW + 5 * MINUTE)}


def test_escrow_times_are_utc_whatever_zone_now_is_given_in(ledger: LedgerRepository) -> None:
    elsewhere = NOW.astimezone(timezone(timedelta(hours=2)))
    fail(ledger, "ann", now=elsewhere)

    assert ledger.escrows()[0].next_retry_at == datetime(2024, 5, 6, 7, 13, 9)
    assert ledger.deferred(NOW + 4 * MINUTE) == {"ann"}
    assert ledger.deferred(elsewhere + 6 * MINUTE) == set()


def test_deferred_lists_the_escrows_whose_retry_is_still_ahead(ledger: LedgerRepository) -> None:
    fail(ledger, "ann", now=NOW)  # retry at NOW + 5 min
    fail(ledger, "bob", now=NOW - 2 * MINUTE)  # retry at NOW + 3 min
    fail(ledger, "cy", now=NOW - 10 * MINUTE)  # retry is past

    assert ledger.deferred(NOW) == {"ann", "bob"}
    assert ledger.deferred(NOW + 3 * MINUTE) == {"ann"}  # due exactly now: not deferred
    assert ledger.deferred(NOW + 5 * MINUTE) == set()


def test_escrows_are_listed_by_first_failure(ledger: LedgerRepository) -> None:
    for object_id in ("zed", "amy", "zed", "mo"):
        fail(ledger, object_id)
        time.sleep(0.002)  # first failures a clock tick apart

    listed = ledger.escrows()

    assert [e.object_id for e in listed] == ["zed", "amy", "mo"]
    assert [e.attempts for e in listed] == [2, 1, 1]
    assert listed[0].first_failed_at < listed[1].first_failed_at < listed[2].first_failed_at


def test_clear_escrows_clears_them_all(ledger: LedgerRepository) -> None:
    fail(ledger, "ann", now=NOW)
    ledger.escrow("g1", "group", "One", "update", "500", now=NOW)

    ledger.clear_escrows()

    assert (ledger.escrows(), ledger.deferred(NOW)) == ([], set())
    fail(ledger, "ann", now=NOW)  # a new failure starts counting again
    assert ledger.escrows()[0].attempts == 1


# -- create intents, convergence, counts ------------------------------------------------------


def test_intents_keep_the_latest_user_name_per_user(ledger: LedgerRepository) -> None:
    ledger.record_intent("ann", "ann@x.example")
    ledger.record_intent("bob", "bob@x.example")
    ledger.record_intent("ann", "ann.lee@x.example")

    assert ledger.intents() == {"ann": "ann.lee@x.example", "bob": "bob@x.example"}


def test_converged_keeps_the_last_fingerprint(ledger: LedgerRepository) -> None:
    ledger.set_converged("abc123")
    ledger.set_converged("def456")
    assert ledger.converged() == "def456"

    ledger.set_converged(None)
    assert ledger.converged() is None


def test_groups_in_doubt_are_kept_sorted_and_an_empty_set_clears(
    ledger: LedgerRepository,
) -> None:
    ledger.set_groups_in_doubt(["tag-b", "tag-c", "tag-a"])
    assert ledger.groups_in_doubt() == ["tag-a", "tag-b", "tag-c"]

    ledger.set_groups_in_doubt({"tag-z"})
    assert ledger.groups_in_doubt() == ["tag-z"]

    ledger.set_groups_in_doubt([])
    assert ledger.groups_in_doubt() == []


def test_counts_count_links_and_escrows(ledger: LedgerRepository) -> None:
    for uid in ("ann", "bob", "cy"):
        ledger.put_user(uid, linked(f"s-{uid}"))
    ledger.put_group("g1", "s-g1", "One")
    ledger.add_members("g1", ["ann", "bob"])
    fail(ledger, "dee")
    ledger.escrow("g2", "group", "Two", "create", "500")

    assert ledger.counts() == {"users_linked": 3, "groups_linked": 1, "escrows": 2}
