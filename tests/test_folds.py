"""The pure folds of Graph delta rounds into the snapshot: table tests and properties."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.decode import merge_delta_object
from syncd.core.records import (
    GROUP_TYPE,
    USER_TYPE,
    DeltaRound,
    DirectoryGroup,
    DirectoryUser,
    Entry,
    GroupSnapshot,
    Presence,
    Problem,
    UserSnapshot,
)
from syncd.core.snapshot import (
    DELETED,
    PRESENT,
    RECYCLED,
    FullUserRound,
    fold_groups,
    fold_users,
)

R = TypeVar("R", DirectoryUser, DirectoryGroup)


def user(uid: str, upn: str, *, manager: str | None = None, **properties: str) -> DirectoryUser:
    return DirectoryUser(uid, {"userPrincipalName": upn, **properties}, manager_id=manager)


def group(
    gid: str, name: str, users: Iterable[str] = (), groups: Iterable[str] = ()
) -> DirectoryGroup:
    return DirectoryGroup(gid, name, frozenset(users), frozenset(groups))


def snapshot(*entries: tuple[R, Presence]) -> dict[str, Entry[R]]:
    """A snapshot from (record, presence) pairs, keyed by the records' ids."""
    return {record.id: Entry(record, presence) for record, presence in entries}


def delta_round(objects: Iterable[Mapping[str, Any]]) -> DeltaRound:
    """The round the Graph adapter makes of these delta objects (members@delta compacted)."""
    result = DeltaRound()
    for obj in objects:
        merge_delta_object(result, dict(obj))
    return result


def removed(uid: str, reason: str) -> dict[str, Any]:
    """A delta object saying ``uid`` is gone, for ``reason`` ("changed" or "deleted")."""
    return {"id": uid, "@removed": {"reason": reason}}


def member(kind: str, member_id: str, *, gone: bool = False) -> dict[str, Any]:
    """One entry of a group's members@delta; ``gone``: the member was removed."""
    entry: dict[str, Any] = {"@odata.type": kind, "id": member_id}
    if gone:
        entry["@removed"] = {"reason": "deleted"}
    return entry


def members(gid: str, *entries: dict[str, Any]) -> dict[str, Any]:
    """A group delta object that only changes members."""
    return {"id": gid, "members@delta": list(entries)}


ADA = user("u1", "ada@x.example", displayName="Ada", jobTitle="Engineer")
BO = user("u2", "bo@x.example", displayName="Bo")
ADA_OBJECT = {"id": "u1", "userPrincipalName": "ada@x.example", "displayName": "Ada"}
BO_OBJECT = {"id": "u2", "userPrincipalName": "bo@x.example", "displayName": "Bo"}
BROKEN_ADA = {"id": "u1", "userPrincipalName": "not an address", "jobTitle": "Boss"}
BROKEN_ADA_PROBLEM = Problem(
    "u1",
    "userPrincipalName",
    "'not an address' is not an address Learnster can use as userName: user skipped",
    "error",
)
NO_UPN_PROBLEM = Problem("u3", "userPrincipalName", "missing or unusable: user skipped", "error")


# fold_users: an incremental round, merged over the previous snapshot

FOLD_USERS_CASES = [
    pytest.param(
        snapshot((ADA, PRESENT)),
        [BO_OBJECT],
        snapshot((ADA, PRESENT), (BO, PRESENT)),
        [],
        id="a new user is added, the others kept",
    ),
    pytest.param(
        snapshot((ADA, PRESENT)),
        [{"id": "u1", "jobTitle": "Architect"}],
        snapshot((user("u1", "ada@x.example", displayName="Ada", jobTitle="Architect"), PRESENT)),
        [],
        id="a changed property is merged over the old record",
    ),
    pytest.param(
        snapshot((ADA, PRESENT)),
        [{"id": "u1", "jobTitle": None}],
        snapshot((user("u1", "ada@x.example", displayName="Ada"), PRESENT)),
        [],
        id="a property cleared in Graph is cleared",
    ),
    pytest.param(
        snapshot((ADA, PRESENT)),
        [{"id": "u1", "manager@delta": [{"@odata.type": USER_TYPE, "id": "m1"}]}],
        snapshot(
            (
                user("u1", "ada@x.example", manager="m1", displayName="Ada", jobTitle="Engineer"),
                PRESENT,
            )
        ),
        [],
        id="manager@delta sets the manager",
    ),
    pytest.param(
        snapshot((user("u1", "ada@x.example", manager="m1", displayName="Ada"), PRESENT)),
        [{"id": "u1", "manager@delta": [{"id": "m1", "@removed": {"reason": "deleted"}}]}],
        snapshot((user("u1", "ada@x.example", displayName="Ada"), PRESENT)),
        [],
        id="manager@delta removes the manager",
    ),
    pytest.param(
        snapshot((user("u1", "ada@x.example", manager="m1", displayName="Ada"), PRESENT)),
        [{"id": "u1", "displayName": "Ada L."}],
        snapshot((user("u1", "ada@x.example", manager="m1", displayName="Ada L."), PRESENT)),
        [],
        id="a round without manager@delta keeps the manager",
    ),
    pytest.param(
        snapshot((ADA, PRESENT)),
        [BROKEN_ADA],
        snapshot((ADA, PRESENT)),
        [BROKEN_ADA_PROBLEM],
        id="a record that fails to decode keeps its previous state",
    ),
    pytest.param(
        snapshot((ADA, RECYCLED)),
        [BROKEN_ADA],
        snapshot((ADA, RECYCLED)),
        [BROKEN_ADA_PROBLEM],
        id="a recycled record that fails to decode stays recycled",
    ),
    pytest.param(
        snapshot((ADA, PRESENT)),
        [{"id": "u3", "displayName": "Nameless"}],
        snapshot((ADA, PRESENT)),
        [NO_UPN_PROBLEM],
        id="a new user that fails to decode is not added",
    ),
    pytest.param(
        snapshot((ADA, PRESENT), (BO, PRESENT)),
        [removed("u1", "changed")],
        snapshot((ADA, RECYCLED), (BO, PRESENT)),
        [],
        id="@removed changed: recycled",
    ),
    pytest.param(
        snapshot((ADA, PRESENT), (BO, PRESENT)),
        [removed("u1", "deleted")],
        snapshot((ADA, DELETED), (BO, PRESENT)),
        [],
        id="@removed deleted: deleted",
    ),
    pytest.param(
        snapshot((ADA, RECYCLED)),
        [removed("u1", "deleted")],
        snapshot((ADA, DELETED)),
        [],
        id="a recycled user deleted for good",
    ),
    pytest.param(
        snapshot((ADA, PRESENT)),
        [removed("u9", "deleted")],
        snapshot((ADA, PRESENT)),
        [],
        id="a removed id the snapshot does not hold is ignored",
    ),
    pytest.param(
        snapshot((ADA, RECYCLED)),
        [{"id": "u1", "displayName": "Ada"}],
        snapshot((ADA, PRESENT)),
        [],
        id="a recycled user restored is present again",
    ),
]


@pytest.mark.parametrize(("previous", "objects", "expected", "problems"), FOLD_USERS_CASES)
def test_fold_users(
    previous: UserSnapshot,
    objects: list[dict[str, Any]],
    expected: UserSnapshot,
    problems: list[Problem],
) -> None:
    round_ = delta_round(objects)
    assert fold_users(previous, round_.objects, round_.removed) == (expected, problems)


# FullUserRound: a full round, decoded object by object, replacing the previous snapshot

FULL_USER_ROUND_CASES = [
    pytest.param(
        snapshot((ADA, PRESENT), (BO, PRESENT)),
        [ADA_OBJECT],
        True,
        snapshot((user("u1", "ada@x.example", displayName="Ada"), PRESENT), (BO, RECYCLED)),
        [],
        id="complete: the round replaces records, a user missing from it is recycled",
    ),
    pytest.param(
        snapshot((ADA, PRESENT), (BO, RECYCLED)),
        [ADA_OBJECT],
        True,
        snapshot((user("u1", "ada@x.example", displayName="Ada"), PRESENT), (BO, RECYCLED)),
        [],
        id="complete: a recycled user missing from the round stays recycled",
    ),
    pytest.param(
        snapshot((ADA, PRESENT), (BO, DELETED)),
        [ADA_OBJECT],
        True,
        snapshot((user("u1", "ada@x.example", displayName="Ada"), PRESENT)),
        [],
        id="complete: a deleted user missing from the round is forgotten",
    ),
    pytest.param(
        snapshot((ADA, PRESENT)),
        [ADA_OBJECT, BO_OBJECT],
        True,
        snapshot((user("u1", "ada@x.example", displayName="Ada"), PRESENT), (BO, PRESENT)),
        [],
        id="complete: a new user is added",
    ),
    pytest.param(
        snapshot((BO, RECYCLED)),
        [BO_OBJECT],
        True,
        snapshot((BO, PRESENT)),
        [],
        id="complete: a recycled user in the round is present again",
    ),
    pytest.param(
        snapshot((ADA, PRESENT), (BO, PRESENT)),
        [BROKEN_ADA, BO_OBJECT],
        True,
        snapshot((ADA, PRESENT), (BO, PRESENT)),
        [BROKEN_ADA_PROBLEM],
        id="complete: a user that fails to decode keeps its previous entry",
    ),
    pytest.param(
        snapshot((ADA, RECYCLED)),
        [BROKEN_ADA],
        True,
        snapshot((ADA, RECYCLED)),
        [BROKEN_ADA_PROBLEM],
        id="complete: a recycled user that fails to decode stays recycled",
    ),
    pytest.param(
        snapshot((ADA, PRESENT)),
        [ADA_OBJECT, {"id": "u3", "displayName": "Nameless"}],
        True,
        snapshot((user("u1", "ada@x.example", displayName="Ada"), PRESENT)),
        [NO_UPN_PROBLEM],
        id="complete: a new user that fails to decode is not added",
    ),
    pytest.param(
        snapshot((ADA, PRESENT), (BO, PRESENT)),
        [removed("u1", "deleted"), removed("u2", "changed")],
        True,
        snapshot((ADA, DELETED), (BO, RECYCLED)),
        [],
        id="complete: removals in the round, by reason",
    ),
    pytest.param(
        snapshot((ADA, PRESENT)),
        [ADA_OBJECT, removed("u9", "deleted")],
        True,
        snapshot((user("u1", "ada@x.example", displayName="Ada"), PRESENT)),
        [],
        id="complete: a removed id the snapshot does not hold is ignored",
    ),
    pytest.param(
        snapshot((ADA, PRESENT), (BO, PRESENT)),
        [ADA_OBJECT],
        False,
        snapshot((user("u1", "ada@x.example", displayName="Ada"), PRESENT), (BO, PRESENT)),
        [],
        id="incomplete: read users are updated, a user missing from it is kept",
    ),
    pytest.param(
        snapshot((ADA, PRESENT)),
        [BO_OBJECT],
        False,
        snapshot((ADA, PRESENT), (BO, PRESENT)),
        [],
        id="incomplete: a new user is added",
    ),
    pytest.param(
        snapshot((ADA, PRESENT), (BO, RECYCLED)),
        [removed("u1", "deleted"), BO_OBJECT],
        False,
        snapshot((ADA, PRESENT), (BO, PRESENT)),
        [],
        id="incomplete: removals are not applied, a restore is",
    ),
    pytest.param(
        snapshot((ADA, PRESENT)),
        [BROKEN_ADA],
        False,
        snapshot((ADA, PRESENT)),
        [BROKEN_ADA_PROBLEM],
        id="incomplete: a user that fails to decode keeps its previous entry",
    ),
]


@pytest.mark.parametrize(
    ("previous", "objects", "complete", "expected", "problems"), FULL_USER_ROUND_CASES
)
def test_full_user_round(
    previous: UserSnapshot,
    objects: list[dict[str, Any]],
    complete: bool,
    expected: UserSnapshot,
    problems: list[Problem],
) -> None:
    round_ = FullUserRound()
    for obj in objects:
        round_.add(obj)
    assert round_.finish(previous, complete=complete) == expected
    assert round_.problems == problems


# fold_groups: members@delta adds and removes, names, removals; full rounds replace

SALES = group("g1", "Sales", users=["u1"], groups=["g2"])
SUPPORT = group("g2", "Support", users=["u2"])
OVER_LONG = "x" * 257
DEVICE = "#microsoft.graph.device"
CONTACT = "#microsoft.graph.orgContact"
PRINCIPAL = "#microsoft.graph.servicePrincipal"


def skipped(gid: str, why: str) -> Problem:
    return Problem(gid, "displayName", f"group {why}: skipped", "error")


FOLD_GROUPS_CASES = [
    pytest.param(
        snapshot((SALES, PRESENT)),
        [members("g1", member(USER_TYPE, "u2"))],
        False,
        snapshot((group("g1", "Sales", users=["u1", "u2"], groups=["g2"]), PRESENT)),
        [],
        id="a user member added",
    ),
    pytest.param(
        snapshot((SALES, PRESENT)),
        [members("g1", member(USER_TYPE, "u1", gone=True))],
        False,
        snapshot((group("g1", "Sales", groups=["g2"]), PRESENT)),
        [],
        id="a user member removed",
    ),
    pytest.param(
        snapshot((SALES, PRESENT)),
        [members("g1", member(GROUP_TYPE, "g3"))],
        False,
        snapshot((group("g1", "Sales", users=["u1"], groups=["g2", "g3"]), PRESENT)),
        [],
        id="a group member added",
    ),
    pytest.param(
        snapshot((SALES, PRESENT)),
        [members("g1", member(GROUP_TYPE, "g2", gone=True))],
        False,
        snapshot((group("g1", "Sales", users=["u1"]), PRESENT)),
        [],
        id="a group member removed",
    ),
    pytest.param(
        snapshot((SALES, PRESENT)),
        [members("g1", member(USER_TYPE, "u2"), member(USER_TYPE, "u2", gone=True))],
        False,
        snapshot((SALES, PRESENT)),
        [],
        id="a member added then removed in one round",
    ),
    pytest.param(
        snapshot((SALES, PRESENT)),
        [members("g1", member(GROUP_TYPE, "g1"))],
        False,
        snapshot((SALES, PRESENT)),
        [],
        id="a group containing itself is ignored",
    ),
    pytest.param(
        snapshot((SALES, PRESENT)),
        [members("g1", member(DEVICE, "d1"), member(CONTACT, "c1"), member(PRINCIPAL, "s1"))],
        False,
        snapshot((SALES, PRESENT)),
        [],
        id="devices, contacts and service principals are ignored",
    ),
    pytest.param(
        snapshot((SALES, PRESENT)),
        [{"id": "g1", "displayName": "Sales EU"}],
        False,
        snapshot((group("g1", "Sales EU", users=["u1"], groups=["g2"]), PRESENT)),
        [],
        id="a rename keeps the members",
    ),
    pytest.param(
        snapshot((SALES, PRESENT)),
        [{"id": "g3", "displayName": "New", "members@delta": [member(USER_TYPE, "u1")]}],
        False,
        snapshot((SALES, PRESENT), (group("g3", "New", users=["u1"]), PRESENT)),
        [],
        id="a new group is added",
    ),
    pytest.param(
        snapshot((SALES, PRESENT)),
        [{"id": "g1", "displayName": "", "members@delta": [member(USER_TYPE, "u2")]}],
        False,
        snapshot((SALES, PRESENT)),
        [skipped("g1", "without a name")],
        id="a group renamed to nothing is skipped, its previous state kept",
    ),
    pytest.param(
        snapshot((SALES, PRESENT)),
        [members("g3", member(USER_TYPE, "u1"))],
        False,
        snapshot((SALES, PRESENT)),
        [skipped("g3", "without a name")],
        id="a new group without a name is skipped",
    ),
    pytest.param(
        snapshot((SALES, PRESENT)),
        [{"id": "g1", "displayName": 42}],
        False,
        snapshot((SALES, PRESENT)),
        [skipped("g1", "without a name")],
        id="a name that is not a string counts as none",
    ),
    pytest.param(
        snapshot((SALES, PRESENT)),
        [{"id": "g1", "displayName": "\t\x07"}],
        False,
        snapshot((SALES, PRESENT)),
        [skipped("g1", "without a name")],
        id="a name of control characters only counts as none",
    ),
    pytest.param(
        snapshot((SALES, PRESENT)),
        [{"id": "g1", "displayName": OVER_LONG}],
        False,
        snapshot((SALES, PRESENT)),
        [skipped("g1", "name over 256 characters")],
        id="a name over 256 characters is skipped, the previous state kept",
    ),
    pytest.param(
        snapshot((SALES, PRESENT)),
        [{"id": "g1", "displayName": "x" * 256}],
        False,
        snapshot((group("g1", "x" * 256, users=["u1"], groups=["g2"]), PRESENT)),
        [],
        id="a name of 256 characters is kept",
    ),
    pytest.param(
        snapshot((SALES, PRESENT)),
        [{"id": "g1", "displayName": "Sales\tEU\x07"}],
        False,
        snapshot((group("g1", "Sales EU", users=["u1"], groups=["g2"]), PRESENT)),
        [
            Problem(
                "g1",
                "displayName",
                "sent cleaned (line breaks or tabs replaced by spaces, control characters removed)",
            )
        ],
        id="a name with control characters is cleaned, with a warning",
    ),
    pytest.param(
        snapshot((SALES, PRESENT), (SUPPORT, PRESENT)),
        [removed("g1", "deleted"), removed("g2", "changed")],
        False,
        snapshot((SALES, DELETED), (SUPPORT, RECYCLED)),
        [],
        id="removals, by reason",
    ),
    pytest.param(
        snapshot((SALES, PRESENT)),
        [removed("g9", "deleted")],
        False,
        snapshot((SALES, PRESENT)),
        [],
        id="a removed id the snapshot does not hold is ignored",
    ),
    pytest.param(
        snapshot((SALES, PRESENT), (SUPPORT, PRESENT)),
        [],
        False,
        snapshot((SALES, PRESENT), (SUPPORT, PRESENT)),
        [],
        id="incremental: a group missing from the round is kept",
    ),
    pytest.param(
        snapshot((SALES, PRESENT), (SUPPORT, PRESENT)),
        [{"id": "g1", "displayName": "Sales", "members@delta": [member(USER_TYPE, "u3")]}],
        True,
        snapshot((group("g1", "Sales", users=["u3"]), PRESENT), (SUPPORT, DELETED)),
        [],
        id="full: members are the round's, a group missing from it is deleted",
    ),
    pytest.param(
        snapshot((SALES, PRESENT), (SUPPORT, RECYCLED)),
        [{"id": "g1", "displayName": "Sales"}],
        True,
        snapshot((group("g1", "Sales"), PRESENT), (SUPPORT, DELETED)),
        [],
        id="full: a recycled group missing from the round is deleted",
    ),
    pytest.param(
        snapshot((SALES, PRESENT), (SUPPORT, DELETED)),
        [{"id": "g1", "displayName": "Sales"}],
        True,
        snapshot((group("g1", "Sales"), PRESENT)),
        [],
        id="full: a deleted group missing from the round is forgotten",
    ),
    pytest.param(
        snapshot((SALES, PRESENT), (SUPPORT, PRESENT)),
        [{"id": "g1", "displayName": OVER_LONG}, {"id": "g2", "displayName": "Support"}],
        True,
        snapshot((SALES, PRESENT), (group("g2", "Support"), PRESENT)),
        [skipped("g1", "name over 256 characters")],
        id="full: a group that is skipped keeps its previous state",
    ),
    pytest.param(
        snapshot((SALES, PRESENT)),
        [members("g1", member(USER_TYPE, "u1"))],
        True,
        snapshot((SALES, PRESENT)),
        [skipped("g1", "without a name")],
        id="full: the name is not taken from the previous snapshot",
    ),
    pytest.param(
        snapshot((SALES, PRESENT), (SUPPORT, PRESENT)),
        [{"id": "g1", "displayName": "Sales"}, removed("g2", "deleted")],
        True,
        snapshot((group("g1", "Sales"), PRESENT), (SUPPORT, DELETED)),
        [],
        id="full: a removal in the round",
    ),
]


@pytest.mark.parametrize(("previous", "objects", "full", "expected", "problems"), FOLD_GROUPS_CASES)
def test_fold_groups(
    previous: GroupSnapshot,
    objects: list[dict[str, Any]],
    full: bool,
    expected: GroupSnapshot,
    problems: list[Problem],
) -> None:
    round_ = delta_round(objects)
    assert fold_groups(previous, round_.objects, round_.removed, full=full) == (expected, problems)


# Properties over small random snapshots and rounds

IDS = ["u1", "u2", "u3", "u4"]
presences = st.sampled_from(list(Presence))
user_records = st.builds(
    user,
    st.sampled_from(IDS),
    st.sampled_from(["a@x.example", "b@x.example"]),
    jobTitle=st.sampled_from(["", "Engineer", "Boss"]),
)
user_snapshots = st.lists(st.tuples(user_records, presences), max_size=4).map(
    lambda entries: snapshot(*entries)
)
user_objects = st.fixed_dictionaries(
    {"id": st.sampled_from(IDS)},
    optional={
        "userPrincipalName": st.sampled_from(["a@x.example", "not an address", None]),
        "jobTitle": st.sampled_from(["Architect", None, 7]),
        "accountEnabled": st.booleans(),
    },
)
removals = st.builds(removed, st.sampled_from(IDS), st.sampled_from(["changed", "deleted"]))
group_snapshots = st.lists(
    st.tuples(
        st.builds(group, st.sampled_from(["g1", "g2"]), st.sampled_from(["Sales", "Support"])),
        presences,
    ),
    max_size=2,
).map(lambda entries: snapshot(*entries))


@settings(max_examples=200, deadline=None)
@given(user_snapshots, group_snapshots)
def test_folding_an_empty_round_changes_nothing(users: UserSnapshot, groups: GroupSnapshot) -> None:
    assert fold_users(users, {}, {}) == (users, [])
    assert fold_groups(groups, {}, {}, full=False) == (groups, [])
    assert FullUserRound().finish(users, complete=False) == users


@settings(max_examples=300, deadline=None)
@given(user_snapshots, st.lists(user_objects, max_size=6))
def test_without_removals_a_delta_round_removes_no_one(
    previous: UserSnapshot, objects: list[dict[str, Any]]
) -> None:
    round_ = delta_round(objects)
    folded, _ = fold_users(previous, round_.objects, round_.removed)
    assert folded.keys() >= previous.keys()
    for uid, entry in previous.items():
        if entry.present:
            assert folded[uid].present


@settings(max_examples=300, deadline=None)
@given(user_snapshots, st.lists(st.one_of(user_objects, removals), max_size=6), st.booleans())
def test_a_present_user_is_removed_only_by_a_removal_or_a_complete_round_missing_it(
    previous: UserSnapshot, objects: list[dict[str, Any]], complete: bool
) -> None:
    round_ = FullUserRound()
    for obj in objects:
        round_.add(obj)
    folded = round_.finish(previous, complete=complete)
    in_round = {obj["id"] for obj in objects}
    removed_in_round = {obj["id"] for obj in objects if "@removed" in obj}
    for uid, entry in previous.items():
        if entry.present and not folded[uid].present:
            assert complete
            assert uid in removed_in_round or uid not in in_round
