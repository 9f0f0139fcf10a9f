"""Operations and plans: their JSON form (saved plans, --json), counting, restricting a plan to
the reviewed operations (`syncd apply`) and deferring objects in escrow."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from syncd.core.attrs import PackedAttrs
from syncd.core.mapping import ACTIVE, TITLE, USER_NAME
from syncd.core.operations import (
    AddMembers,
    CreateGroup,
    CreateUser,
    DeleteGroup,
    DeleteUser,
    Operation,
    Plan,
    RemoveMembers,
    RenameGroup,
    UpdateUser,
    defer,
    is_removal,
    object_id,
    object_type,
    operation_changes,
    operation_to_json,
    restrict_plan,
)

A = {USER_NAME: "a@x.example", ACTIVE: True}
CREATE = CreateUser("u1", PackedAttrs(A))
UPDATE = UpdateUser("u2", {**A, TITLE: "Old"}, {**A, TITLE: "New", "x": 1})
DEACTIVATE = UpdateUser("u3", A, {**A, ACTIVE: False})
DELETE = DeleteUser("u4")
CREATE_GROUP = CreateGroup("g1", "Sales", ("u1",), frozenset({"u1", "u2"}))
EMPTY_GROUP = CreateGroup("g5", "Empty")
RENAME = RenameGroup("g2", "Old", "New")
ADD = AddMembers("g3", ("u1", "u2"))
REMOVE = RemoveMembers("g3", ("u5",))
DELETE_GROUP = DeleteGroup("g4")


@pytest.mark.parametrize(
    ("op", "data"),
    [
        (CREATE, {"kind": "create_user", "object": "u1", "attributes": A}),
        (
            UPDATE,
            {
                "kind": "update_user",
                "object": "u2",
                "changes": [
                    {"path": "title", "old": "Old", "new": "New"},
                    {"path": "x", "old": None, "new": 1},
                ],
            },
        ),
        (DELETE, {"kind": "delete_user", "object": "u4"}),
        (
            CREATE_GROUP,
            {"kind": "create_group", "object": "g1", "displayName": "Sales", "members": ["u1"]},
        ),
        (EMPTY_GROUP, {"kind": "create_group", "object": "g5", "displayName": "Empty"}),
        (
            RENAME,
            {
                "kind": "rename_group",
                "object": "g2",
                "changes": [{"path": "displayName", "old": "Old", "new": "New"}],
            },
        ),
        (ADD, {"kind": "add_members", "object": "g3", "members": ["u1", "u2"]}),
        (REMOVE, {"kind": "remove_members", "object": "g3", "members": ["u5"]}),
        (DELETE_GROUP, {"kind": "delete_group", "object": "g4"}),
    ],
)
def test_operation_to_json(op: Operation, data: dict[str, Any]) -> None:
    assert operation_to_json(op) == data


def test_what_an_operation_is_about() -> None:
    for op in (CREATE, UPDATE, DELETE):
        assert object_type(op) == "user"
    for op in (CREATE_GROUP, RENAME, ADD, REMOVE, DELETE_GROUP):
        assert object_type(op) == "group"
    assert [object_id(op) for op in (CREATE, DELETE, RENAME, DELETE_GROUP)] == [
        "u1",
        "u4",
        "g2",
        "g4",
    ]
    assert [
        is_removal(op) for op in (CREATE, UPDATE, DEACTIVATE, DELETE, REMOVE, DELETE_GROUP)
    ] == [
        False,
        False,
        True,
        True,
        False,
        True,
    ]
    # Deactivating what is inactive already, or reactivating, is no removal.
    assert not UpdateUser("u", {**A, ACTIVE: False}, {**A, ACTIVE: False, TITLE: "T"}).deactivates
    assert not UpdateUser("u", {**A, ACTIVE: False}, A).deactivates
    assert UpdateUser("u", {USER_NAME: "a"}, {USER_NAME: "a", ACTIVE: False}).deactivates


def test_a_plan_counts_its_operations_by_kind() -> None:
    the_plan = Plan(phases=((CREATE, UPDATE), (DEACTIVATE, DELETE_GROUP)), held=(DELETE,))
    assert len(the_plan) == 4
    assert the_plan.operations == [CREATE, UPDATE, DEACTIVATE, DELETE_GROUP]
    assert the_plan.counts() == {"create_user": 1, "update_user": 2, "delete_group": 1}
    assert Plan().counts() == {}


def test_restricting_a_plan_keeps_the_reviewed_operations_that_are_still_valid() -> None:
    fresh = Plan(phases=((CREATE,), (UPDATE, RENAME), (DEACTIVATE,)), held=(DELETE, DELETE_GROUP))
    approved = [
        {**operation_to_json(CREATE), "label": "a@x.example", "why": "new"},  # annotations
        operation_to_json(DEACTIVATE),
        operation_to_json(DELETE),
        {
            **operation_to_json(RENAME),
            "changes": [{"path": "displayName", "old": "Old", "new": "Other"}],
        },
        operation_to_json(ADD),  # planning no longer yields it
    ]
    restricted = restrict_plan(fresh, approved)
    assert restricted.plan == Plan(phases=((CREATE,), (DEACTIVATE,)), held=(DELETE,))
    assert restricted.stale == [approved[3], approved[4]]
    assert restrict_plan(fresh, []) == (Plan(), [])


def test_deferring_holds_back_the_operations_on_objects_in_escrow() -> None:
    the_plan = Plan(phases=((CREATE,), (UPDATE, ADD), (REMOVE,)), held=(DELETE,))
    deferred = defer(the_plan, {"u2", "g3"})
    assert deferred.plan == Plan(phases=((CREATE,),), held=(DELETE,))
    assert deferred.deferred == [UPDATE, ADD, REMOVE]
    assert defer(the_plan, set()) == (the_plan, [])
    assert defer(the_plan, {"nobody"}) == (the_plan, [])


def test_a_reviewed_operation_matches_whatever_the_order_of_its_keys() -> None:
    # A reviewer's tool may rewrite the saved plan with its keys sorted or reordered.
    def reversed_keys(data: Any) -> Any:
        if isinstance(data, dict):
            return {k: reversed_keys(data[k]) for k in reversed(list(data))}
        if isinstance(data, list):
            return [reversed_keys(v) for v in data]
        return data

    fresh = Plan(phases=((CREATE, UPDATE),))
    approved = [reversed_keys(operation_to_json(op)) for op in (CREATE, UPDATE)]
    assert restrict_plan(fresh, approved) == (fresh, [])


def test_a_value_saved_as_its_text_matches() -> None:
    # `syncd plan --out` writes values JSON cannot hold as their text (default=str).
    when = datetime(2026, 1, 2, tzinfo=UTC)
    fresh = Plan(phases=((CreateUser("u9", {USER_NAME: "a@x.example", "when": when}),),))
    saved = json.loads(json.dumps([operation_to_json(op) for op in fresh.operations], default=str))
    assert restrict_plan(fresh, saved) == (fresh, [])


@pytest.mark.parametrize(
    ("op", "changes"),
    [
        (CREATE, {ACTIVE: [None, True], USER_NAME: [None, "a@x.example"]}),
        # Only what differs, old and new, None where there is no value; in path order.
        (UPDATE, {TITLE: ["Old", "New"], "x": [None, 1]}),
        (UpdateUser("u2", {**A, TITLE: "Old"}, A), {TITLE: ["Old", None]}),
        (UpdateUser("u2", A, A), {}),
        (DEACTIVATE, {ACTIVE: [True, False]}),
        (DELETE, {}),
        # A tag's create: its name, and the members its POST carries (not those of later batches).
        (CREATE_GROUP, {"displayName": [None, "Sales"], "members": [None, ["u1"]]}),
        (EMPTY_GROUP, {"displayName": [None, "Empty"]}),
        (RENAME, {"displayName": ["Old", "New"]}),
        (AddMembers("g1", ("u2", "u3")), {"members": [None, ["u2", "u3"]]}),
        (RemoveMembers("g1", ("u1",)), {"members": [["u1"], None]}),
        (DeleteGroup("g1"), {}),
    ],
)
def test_what_an_operation_changes(op: Operation, changes: dict[str, list[Any]]) -> None:
    found = operation_changes(op)
    assert found == changes
    assert list(found) == sorted(found)  # in path order, as the log shows them


def test_an_update_lists_its_changes_in_path_order() -> None:
    # Six paths: that a set's order came out sorted by chance is one in 720.
    before = {"b": 1, "d": 1, "f": 1}
    after = {"a": 2, "c": 2, "e": 2, "f": 2}
    changes = operation_changes(UpdateUser("u1", before, after))
    assert list(changes) == ["a", "b", "c", "d", "e", "f"]
    assert changes["b"] == [1, None]
    assert changes["a"] == [None, 2]
    assert changes["f"] == [1, 2]
