"""Folding rounds at their edges beyond tests/test_folds.py: an object a round both lists and
removes, removals in full group rounds, and the labels reports show."""

from __future__ import annotations

from syncd.core.records import DirectoryGroup, DirectoryUser, Entry, Presence
from syncd.core.snapshot import FullUserRound, fold_groups, labels_of

PRESENT, RECYCLED, DELETED = Presence.PRESENT, Presence.RECYCLED, Presence.DELETED


def test_a_full_round_that_lists_and_removes_a_new_user_counts_it_removed() -> None:
    full = FullUserRound()
    full.add({"id": "u1", "userPrincipalName": "a@x.example"})
    full.add({"id": "u1", "@removed": {"reason": "deleted"}})
    assert full.finish({}, complete=True) == {
        "u1": Entry(DirectoryUser("u1", {"userPrincipalName": "a@x.example"}), DELETED)
    }


def test_removed_groups_keep_the_reason_of_their_removal() -> None:
    sales = DirectoryGroup("g1", "Sales")
    previous = {"g1": Entry(sales, PRESENT)}
    removed = {"g1": RECYCLED, "new": DELETED, "never": RECYCLED}
    objects = {"new": {"id": "new", "displayName": "New"}}
    for full in (True, False):
        folded = fold_groups(previous, objects, removed, full=full)
        assert folded.snapshot == {
            "g1": Entry(sales, RECYCLED),
            "new": Entry(DirectoryGroup("new", "New"), DELETED),
        }
        assert folded.problems == []


def test_labels_are_upns_and_group_names() -> None:
    users = {"u1": Entry(DirectoryUser("u1", {"userPrincipalName": "a@x.example"}), PRESENT)}
    groups = {"g1": Entry(DirectoryGroup("g1", "Sales"), DELETED)}
    assert labels_of(users, groups) == {"u1": "a@x.example", "g1": "Sales"}
    assert labels_of({}, {}) == {}
