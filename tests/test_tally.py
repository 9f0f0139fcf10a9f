"""The apply stage's tally: the provisioning log is written as it grows, not held to the end."""

from __future__ import annotations

import json

from syncd.adapters.memory import MemoryStore
from syncd.core.attrs import PackedAttrs
from syncd.core.operations import (
    AddMembers,
    CreateGroup,
    CreateUser,
    DeleteGroup,
    DeleteUser,
    Outcome,
    RemoveMembers,
    RenameGroup,
    UpdateUser,
)
from syncd.cycle.tally import LOG_BYTES_BUFFERED, LOG_LINES_BUFFERED, Tally


def test_the_provisioning_log_is_written_every_thousand_lines_and_at_the_flush() -> None:
    store = MemoryStore()
    run_id = store.runs.start("full", dry_run=False)
    tally = Tally(store.ledger, store.runs, run_id, {}, None)
    total = LOG_LINES_BUFFERED * 2 + 7
    for i in range(total):
        tally.outcome(DeleteUser(f"u{i}"), Outcome.DELETED)
        written = len(store.runs.entries(limit=10 * total))
        assert written == (i + 1) // LOG_LINES_BUFFERED * LOG_LINES_BUFFERED
    tally.flush()
    entries = store.runs.entries(limit=10 * total)
    assert len(entries) == total
    assert {e.object_id for e in entries} == {f"u{i}" for i in range(total)}
    assert tally.result.outcomes["delete_user"][Outcome.DELETED] == total


def test_lines_with_large_changes_are_written_before_a_thousand() -> None:
    # Lines whose changes are large (here 1,250 members each, ~50 kB) are written sooner.
    store = MemoryStore()
    run_id = store.runs.start("full", dry_run=False)
    tally = Tally(store.ledger, store.runs, run_id, {}, None)
    members = tuple(f"{i:08d}-0000-0000-0000-000000000000" for i in range(1250))
    changes = {"displayName": [None, "Tag"], "members": [None, list(members)]}
    size = len(json.dumps(changes, separators=(",", ":")))
    per_write = -(-LOG_BYTES_BUFFERED // size)  # lines until the buffer holds the budget
    assert per_write < LOG_LINES_BUFFERED
    for i in range(per_write * 2):
        tally.outcome(CreateGroup(f"g{i}", "Tag", members, frozenset(members)), Outcome.CREATED)
        written = len(store.runs.entries(limit=1000))
        assert written == (i + 1) // per_write * per_write
    assert len(store.runs.entries(limit=1000)) == per_write * 2


def test_each_line_keeps_what_its_operation_changed() -> None:
    store = MemoryStore()
    run_id = store.runs.start("full", dry_run=False)
    tally = Tally(store.ledger, store.runs, run_id, {"u1": "ann@x.example", "g1": "Sales"}, None)
    before = PackedAttrs({"userName": "ann@x.example", "active": True, "title": "Clerk"})
    after = PackedAttrs({"userName": "ann@x.example", "active": False, "displayName": "Ann"})
    for op in (
        CreateUser("u1", PackedAttrs({"userName": "ann@x.example", "active": True})),
        UpdateUser("u1", before, after),
        DeleteUser("u1"),
        CreateGroup("g1", "Sales", ("u1",), frozenset({"u1", "u2"})),
        RenameGroup("g1", "Sales", "Sales EMEA"),
        AddMembers("g1", ("u2", "u3")),
        RemoveMembers("g1", ("u1",)),
        DeleteGroup("g1"),
    ):
        tally.outcome(op, Outcome.FAILED if isinstance(op, DeleteGroup) else Outcome.UPDATED)
    tally.flush()
    lines = [(e.label, e.operation, json.loads(e.changes)) for e in store.runs.entries()[::-1]]
    assert lines == [
        (
            "ann@x.example",
            "create_user",
            {"active": [None, True], "userName": [None, "ann@x.example"]},
        ),
        (
            "ann@x.example",
            "update_user",
            {"active": [True, False], "displayName": [None, "Ann"], "title": ["Clerk", None]},
        ),
        ("ann@x.example", "delete_user", {}),
        ("Sales", "create_group", {"displayName": [None, "Sales"], "members": [None, ["u1"]]}),
        ("Sales", "rename_group", {"displayName": ["Sales", "Sales EMEA"]}),
        ("Sales", "add_members", {"members": [None, ["u2", "u3"]]}),
        ("Sales", "remove_members", {"members": [["u1"], None]}),
        ("Sales", "delete_group", {}),  # a failed operation too: what it would have changed
    ]
