"""The SnapshotRepository contract, over both adapters: the directory as last read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.core.records import (
    Assignments,
    DirectoryGroup,
    DirectoryUser,
    Entry,
    GroupSnapshot,
    Presence,
    UserSnapshot,
    user_name_key,
)
from syncd.ports import SnapshotRepository
from tests.contract.conftest import ADAPTERS, open_store

FULL_READ = datetime(2024, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture(params=ADAPTERS)
def snapshot(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SnapshotRepository]:
    with open_store(request.param, tmp_path) as store:
        yield store.snapshot


def user(
    uid: str,
    upn: str = "",
    presence: Presence = Presence.PRESENT,
    manager: str | None = None,
) -> tuple[str, Entry[DirectoryUser]]:
    """One snapshot user, as an item of a UserSnapshot."""
    record = DirectoryUser(
        uid,
        {"userPrincipalName": upn or f"{uid}@x.example", "displayName": f"User {uid}"},
        manager_id=manager,
    )
    return uid, Entry(record, presence)


def group(
    gid: str, members: tuple[str, ...] = (), presence: Presence = Presence.PRESENT
) -> tuple[str, Entry[DirectoryGroup]]:
    """One snapshot group, as an item of a GroupSnapshot."""
    return gid, Entry(DirectoryGroup(gid, f"Group {gid}", frozenset(members)), presence)


def fill(snapshot: SnapshotRepository, *users: tuple[str, Entry[DirectoryUser]]) -> UserSnapshot:
    """Replace the snapshot with these users (and no groups)."""
    given = dict(users)
    snapshot.replace(given, {}, {}, full_read_at=None)
    return given


def test_a_new_snapshot_is_empty(snapshot: SnapshotRepository) -> None:
    assert snapshot.load() == ({}, {})
    assert snapshot.delta_links() == {}
    assert snapshot.last_full_read() is None
    assert snapshot.counts() == {"snapshot_users": 0, "snapshot_groups": 0}


def test_replace_then_load_round_trips_records_with_each_presence(
    snapshot: SnapshotRepository,
) -> None:
    rich = DirectoryUser(
        "u1",
        {
            "userPrincipalName": "Zoë@x.example",
            "displayName": "Zoë Ångström",
            "jobTitle": "Engineer",
            "usageLocation": "SE",
        },
        account_enabled=False,
        business_phones=("+46 8 123 456", "+46 8 654 321"),
        manager_id="u2",
    )
    users: UserSnapshot = {
        "u1": Entry(rich, Presence.PRESENT),
        **dict([user("u2", presence=Presence.RECYCLED), user("u3", presence=Presence.DELETED)]),
    }
    groups: GroupSnapshot = dict(
        [
            group("g1", ("u1", "u2")),
            group("g2", presence=Presence.RECYCLED),
            group("g3", presence=Presence.DELETED),
        ]
    )
    nested = DirectoryGroup("g4", "Nested", frozenset({"u3"}), frozenset({"g1", "g2"}))
    groups["g4"] = Entry(nested, Presence.PRESENT)

    snapshot.replace(users, groups, {}, full_read_at=None)

    assert snapshot.load() == (users, groups)
    loaded_users, loaded_groups = snapshot.load()
    assert {uid: e.presence for uid, e in loaded_users.items()} == {
        "u1": Presence.PRESENT,
        "u2": Presence.RECYCLED,
        "u3": Presence.DELETED,
    }
    assert loaded_users["u1"].record.properties == rich.properties
    assert loaded_groups["g4"].record.group_members == {"g1", "g2"}


def test_replace_drops_the_records_it_is_not_given(snapshot: SnapshotRepository) -> None:
    snapshot.replace(dict([user("u1"), user("u2")]), dict([group("g1")]), {}, full_read_at=None)
    users, groups = dict([user("u3")]), dict([group("g2")])

    snapshot.replace(users, groups, {}, full_read_at=None)

    assert snapshot.load() == (users, groups)


def test_update_upserts_the_given_records_and_keeps_the_others(
    snapshot: SnapshotRepository,
) -> None:
    snapshot.replace(dict([user("u1"), user("u2")]), dict([group("g1")]), {}, full_read_at=None)
    changed = dict([user("u2", "renamed@x.example", Presence.RECYCLED), user("u3")])
    more = dict([group("g1", ("u3",)), group("g2")])

    snapshot.update(changed, more, {})

    assert snapshot.load() == (dict([user("u1"), *changed.items()]), more)


def test_loaded_and_given_mappings_are_not_shared_with_the_repository(
    snapshot: SnapshotRepository,
) -> None:
    given = fill(snapshot, user("u1"))
    given.clear()
    snapshot.load()[0].clear()
    snapshot.users(["u1"]).clear()

    assert snapshot.load()[0] == dict([user("u1")])


def test_users_and_groups_return_only_the_known_ids(snapshot: SnapshotRepository) -> None:
    snapshot.replace(
        dict([user("u1"), user("u2", presence=Presence.DELETED)]),
        dict([group("g1"), group("g2", presence=Presence.RECYCLED)]),
        {},
        full_read_at=None,
    )

    assert snapshot.users(["u2", "nobody"]) == dict([user("u2", presence=Presence.DELETED)])
    assert snapshot.users([]) == {}
    assert snapshot.groups(["g2", "g1", "none"]) == dict(
        [group("g1"), group("g2", presence=Presence.RECYCLED)]
    )
    assert snapshot.groups(["none"]) == {}


def test_replace_and_update_save_delta_links_merged_per_resource(
    snapshot: SnapshotRepository,
) -> None:
    snapshot.replace({}, {}, {"users": "u-1", "groups": "g-1"}, full_read_at=None)
    assert snapshot.delta_links() == {"users": "u-1", "groups": "g-1"}

    snapshot.replace({}, {}, {"users": "u-2"}, full_read_at=None)
    assert snapshot.delta_links() == {"users": "u-2", "groups": "g-1"}

    snapshot.update({}, {}, {"groups": "g-2"})
    assert snapshot.delta_links() == {"users": "u-2", "groups": "g-2"}


def test_save_delta_links_merges_per_resource_and_forget_drops_them_all(
    snapshot: SnapshotRepository,
) -> None:
    fill(snapshot, user("u1"))
    snapshot.save_delta_links({"users": "u-1"})
    snapshot.save_delta_links({"groups": "g-1"})
    snapshot.save_delta_links({"users": "u-2"})
    assert snapshot.delta_links() == {"users": "u-2", "groups": "g-1"}

    snapshot.forget_delta_links()

    assert snapshot.delta_links() == {}
    assert snapshot.load()[0] == dict([user("u1")])  # the records stay


def test_last_full_read_is_set_only_when_full_read_at_is_given(
    snapshot: SnapshotRepository,
) -> None:
    snapshot.replace({}, {}, {}, full_read_at=None)
    assert snapshot.last_full_read() is None

    snapshot.replace({}, {}, {}, full_read_at=FULL_READ)
    assert snapshot.last_full_read() == FULL_READ

    snapshot.replace({}, {}, {}, full_read_at=None)
    snapshot.update(dict([user("u1")]), {}, {})
    assert snapshot.last_full_read() == FULL_READ

    snapshot.forget_full_read()
    assert snapshot.last_full_read() is None
    assert snapshot.load()[0] == dict([user("u1")])


def test_reports_of_are_the_users_whose_manager_is_one_of_the_ids(
    snapshot: SnapshotRepository,
) -> None:
    fill(
        snapshot,
        user("boss"),
        user("a", manager="boss"),
        user("b", manager="boss", presence=Presence.RECYCLED),
        user("c", manager="other"),
        user("d", manager="a"),
        user("e"),
    )

    assert snapshot.reports_of(["boss"]) == {"a", "b"}
    assert snapshot.reports_of(["boss", "a", "nobody"]) == {"a", "b", "d"}
    assert snapshot.reports_of(["e"]) == set()
    assert snapshot.reports_of([]) == set()


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("Ann.Lee@X.example", "ann.lee@x.EXAMPLE"),
        ("Straße@x.example", "STRASSE@x.example"),  # casefold, not lower()
        ("Émile@x", "émile@x"),  # beyond ASCII, where SQLite's lower() stops
    ],
)
def test_ids_by_user_name_ignores_case_as_user_name_key_does(
    snapshot: SnapshotRepository, stored: str, asked: str
) -> None:
    fill(snapshot, user("u1", stored), user("u2", "someone.else@x.example"))

    assert user_name_key(asked) == user_name_key(stored)
    assert snapshot.ids_by_user_name([asked]) == {user_name_key(asked): {"u1"}}


def test_ids_by_user_name_holds_present_users_only_and_every_clash(
    snapshot: SnapshotRepository,
) -> None:
    fill(
        snapshot,
        user("u1", "Same@x.example"),
        user("u2", "same@X.EXAMPLE"),
        user("u3", "SAME@x.example", Presence.RECYCLED),
        user("u4", "gone@x.example", Presence.DELETED),
        user("u5", "other@x.example"),
    )

    found = snapshot.ids_by_user_name(["same@x.example", "Gone@x.example", "nobody@x.example"])

    assert found == {"same@x.example": {"u1", "u2"}}
    assert snapshot.ids_by_user_name([]) == {}


def test_ids_by_user_name_follows_update(snapshot: SnapshotRepository) -> None:
    fill(snapshot, user("u1", "old@x.example"), user("u2", "kept@x.example"))

    renamed = user("u1", "New@x.example")
    snapshot.update(dict([renamed, user("u2", "kept@x.example", Presence.RECYCLED)]), {}, {})

    assert snapshot.ids_by_user_name(["old@x.example", "kept@x.example"]) == {}
    assert snapshot.ids_by_user_name(["NEW@x.example"]) == {"new@x.example": {"u1"}}


def test_presence_of_answers_for_the_known_ids_only(snapshot: SnapshotRepository) -> None:
    fill(
        snapshot,
        user("u1"),
        user("u2", presence=Presence.RECYCLED),
        user("u3", presence=Presence.DELETED),
    )

    assert snapshot.presence_of(["u1", "u2", "u3", "nobody"]) == {
        "u1": Presence.PRESENT,
        "u2": Presence.RECYCLED,
        "u3": Presence.DELETED,
    }
    assert snapshot.presence_of(["nobody"]) == {}


def test_counts_include_removed_records(snapshot: SnapshotRepository) -> None:
    snapshot.replace(
        dict([user("u1"), user("u2", presence=Presence.DELETED), user("u3")]),
        dict([group("g1", presence=Presence.RECYCLED)]),
        {},
        full_read_at=None,
    )
    snapshot.update(dict([user("u4")]), dict([group("g2")]), {})

    assert snapshot.counts() == {"snapshot_users": 4, "snapshot_groups": 2}


def test_settle_is_safe_at_any_time_and_keeps_what_update_wrote(
    snapshot: SnapshotRepository,
) -> None:
    snapshot.settle()  # nothing put off yet
    fill(snapshot, user("u1"))
    snapshot.settle()
    snapshot.update(dict([user("u2")]), dict([group("g1")]), {"users": "u-1"})
    snapshot.update(dict([user("u3")]), {}, {})

    snapshot.settle()
    snapshot.settle()

    assert snapshot.load() == (dict([user("u1"), user("u2"), user("u3")]), dict([group("g1")]))
    assert snapshot.delta_links() == {"users": "u-1"}
    snapshot.update(dict([user("u4")]), {}, {})  # and update works again after settling
    snapshot.settle()
    assert snapshot.counts()["snapshot_users"] == 4


def test_the_user_selection_is_kept_from_the_read_that_stored_it(
    snapshot: SnapshotRepository,
) -> None:
    assert snapshot.user_selection() is None
    snapshot.replace({}, {}, {"users": "link-1"}, full_read_at=None, selection=("id", "mail"))
    assert snapshot.user_selection() == ("id", "mail")
    snapshot.replace(
        {}, {}, {"users": "link-2"}, full_read_at=None
    )  # a read that selected as before
    snapshot.update({}, {}, {"users": "link-3"})
    assert snapshot.user_selection() == ("id", "mail")
    snapshot.replace({}, {}, {}, full_read_at=None, selection=("id", "mail", "employeeType"))
    assert snapshot.user_selection() == ("id", "mail", "employeeType")


def test_the_assignments_are_kept_until_a_read_brings_others(
    snapshot: SnapshotRepository,
) -> None:
    assert snapshot.assignments() is None
    first = Assignments("sp-1", frozenset({"u1", "u2"}), frozenset({"g1"}))
    snapshot.replace({}, {}, {}, full_read_at=None, assignments=first)
    assert snapshot.assignments() == first
    snapshot.update({}, {}, {})
    snapshot.replace({}, {}, {}, full_read_at=None)
    assert snapshot.assignments() == first
    second = Assignments("sp-1", frozenset(), frozenset({"g1", "g2"}))
    snapshot.update({}, {}, {}, second)
    assert snapshot.assignments() == second


def test_extra_properties_survive_the_round_trip(snapshot: SnapshotRepository) -> None:
    extra = {
        "employeeType": "Contractor",
        "onPremisesExtensionAttributes": {"extensionAttribute7": "EMEA-N"},
        "extension_0123456789abcdef0123456789abcdef_isContractor": True,
    }
    record = DirectoryUser("u1", {"userPrincipalName": "u1@x.example"}, extra=extra)
    snapshot.replace({"u1": Entry(record, Presence.PRESENT)}, {}, {}, full_read_at=None)
    [(loaded, _)] = snapshot.users(["u1"]).values()
    assert loaded == record
    assert loaded.extra == extra
    assert loaded.values(["onPremisesExtensionAttributes.extensionAttribute7"]) == {
        "onPremisesExtensionAttributes.extensionAttribute7": "EMEA-N"
    }
