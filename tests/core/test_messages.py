"""SCIM request bodies (DESIGN.md §5): the exact PATCH operations of every attribute transition,
the POST bodies, the flat form of what Learnster holds, and the tags' requests."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.core.mapping import (
    ACTIVE,
    COUNTRY,
    DISPLAY_NAME,
    ENTERPRISE_SCHEMA,
    EXTERNAL_ID,
    FORMATTED_NAME,
    GIVEN_NAME,
    LOCALITY,
    MANAGER,
    MOBILE_PHONE,
    OFFICE,
    ORGANIZATION,
    POSTAL_CODE,
    TITLE,
    USER_NAME,
    WORK_EMAIL,
    WORK_PHONE,
)
from syncd.core.messages import (
    CORE_USER_SCHEMA,
    GROUP_SCHEMA,
    add_members_operation,
    build_user_resource,
    flatten_user_resource,
    group_resource,
    is_same_tag_name,
    member_patches,
    remove_member_operation,
    rename_operation,
    user_patch_operations,
    work_email_key,
)

BASE = {USER_NAME: "a@x.example", ACTIVE: True}
WORK = {WORK_PHONE: "+46812345678"}
MOBILE = {MOBILE_PHONE: "+46701234567"}


def ops(before: dict[str, Any], after: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
    return user_patch_operations({**BASE, **before}, {**BASE, **after}, "L-{}".format, **kwargs)


# (before, after, the operations; the same with remove_missing=False when it differs)
TRANSITIONS = [
    # a single-valued attribute
    pytest.param(
        {}, {TITLE: "T"}, [{"op": "add", "path": "title", "value": "T"}], id="scalar added"
    ),
    pytest.param({TITLE: "T"}, {}, [{"op": "remove", "path": "title"}], id="scalar removed"),
    pytest.param(
        {TITLE: "T"},
        {TITLE: "U"},
        [{"op": "replace", "path": "title", "value": "U"}],
        id="scalar changed",
    ),
    pytest.param({TITLE: "T"}, {TITLE: "T"}, [], id="scalar unchanged"),
    pytest.param(
        {GIVEN_NAME: "A"},
        {GIVEN_NAME: "B"},
        [{"op": "replace", "path": "name.givenName", "value": "B"}],
        id="sub-attribute changed",
    ),
    pytest.param(
        {},
        {ORGANIZATION: "Contoso"},
        [{"op": "add", "path": ORGANIZATION, "value": "Contoso"}],
        id="enterprise attribute added",
    ),
    # active is replaced, never added or removed
    pytest.param(
        {}, {ACTIVE: False}, [{"op": "replace", "path": "active", "value": False}], id="deactivated"
    ),
    pytest.param(
        {ACTIVE: False}, {}, [{"op": "replace", "path": "active", "value": True}], id="reactivated"
    ),
    # a multi-valued attribute's element
    pytest.param(
        {},
        {WORK_EMAIL: "a@b.se"},
        [{"op": "add", "path": "emails", "value": [{"type": "work", "value": "a@b.se"}]}],
        id="element added whole",
    ),
    pytest.param(
        {WORK_EMAIL: "a@b.se"},
        {},
        [{"op": "remove", "path": 'emails[type eq "work"]'}],
        id="element removed",
    ),
    pytest.param(
        {WORK_EMAIL: "a@b.se"},
        {WORK_EMAIL: "c@b.se"},
        [{"op": "replace", "path": 'emails[type eq "work"].value', "value": "c@b.se"}],
        id="element's value replaced",
    ),
    pytest.param(
        {OFFICE: "HQ"},
        {OFFICE: "HQ", LOCALITY: "Lund"},
        [{"op": "add", "path": 'addresses[type eq "work"].locality', "value": "Lund"}],
        id="element's sub-attribute added",
    ),
    pytest.param(
        {OFFICE: "HQ", LOCALITY: "Lund"},
        {OFFICE: "HQ"},
        [{"op": "remove", "path": 'addresses[type eq "work"].locality'}],
        id="element's sub-attribute removed",
    ),
    pytest.param(
        {OFFICE: "HQ", LOCALITY: "Lund", POSTAL_CODE: "1"},
        {OFFICE: "Annex", COUNTRY: "SE", POSTAL_CODE: "1"},
        [
            {"op": "add", "path": 'addresses[type eq "work"].country', "value": "SE"},
            {"op": "replace", "path": 'addresses[type eq "work"].formatted', "value": "Annex"},
            {"op": "remove", "path": 'addresses[type eq "work"].locality'},
        ],
        id="element's sub-attributes each",
    ),
    pytest.param(
        WORK,
        {**WORK, 'photos[type eq "photo"].value': "https://p.example/a"},
        [
            {
                "op": "add",
                "path": "photos",
                "value": [{"type": "photo", "value": "https://p.example/a"}],
            }
        ],
        id="any multi-valued attribute, after phoneNumbers too",
    ),
    pytest.param(
        {WORK_EMAIL: "a@b.se"},
        {OFFICE: "HQ", WORK_EMAIL: "c@b.se"},
        [
            {"op": "add", "path": "addresses", "value": [{"type": "work", "formatted": "HQ"}]},
            {"op": "replace", "path": 'emails[type eq "work"].value', "value": "c@b.se"},
        ],
        id="an element added, another changed",
    ),
    # phone numbers: Learnster keeps only the first, work before mobile
    pytest.param(
        {},
        {**WORK, **MOBILE},
        [
            {
                "op": "add",
                "path": "phoneNumbers",
                "value": [
                    {"type": "work", "value": WORK[WORK_PHONE]},
                    {"type": "mobile", "value": MOBILE[MOBILE_PHONE]},
                ],
            }
        ],
        id="phones added, work first",
    ),
    pytest.param(
        {**WORK, **MOBILE},
        {},
        [
            {"op": "remove", "path": 'phoneNumbers[type eq "work"]'},
            {"op": "remove", "path": 'phoneNumbers[type eq "mobile"]'},
        ],
        id="phones removed",
    ),
    pytest.param(
        WORK,
        {WORK_PHONE: "+46812345679"},
        [{"op": "replace", "path": 'phoneNumbers[type eq "work"].value', "value": "+46812345679"}],
        id="work phone changed",
    ),
    pytest.param(
        WORK,
        {**WORK, **MOBILE},
        [
            {
                "op": "add",
                "path": "phoneNumbers",
                "value": [{"type": "mobile", "value": MOBILE[MOBILE_PHONE]}],
            }
        ],
        id="mobile added behind work",
    ),
    pytest.param(
        {**WORK, **MOBILE},
        WORK,
        [{"op": "remove", "path": 'phoneNumbers[type eq "mobile"]'}],
        id="mobile removed behind work",
    ),
    pytest.param(
        MOBILE,
        WORK,
        [
            {
                "op": "replace",
                "path": "phoneNumbers",
                "value": [{"type": "work", "value": WORK[WORK_PHONE]}],
            }
        ],
        id="the first number's type changes: the list replaced",
    ),
    # the manager: its Learnster id, replaced or removed
    pytest.param(
        {},
        {MANAGER: "m"},
        [{"op": "replace", "path": MANAGER, "value": {"value": "L-m"}}],
        id="manager set",
    ),
    pytest.param(
        {MANAGER: "m"},
        {MANAGER: "n"},
        [{"op": "replace", "path": MANAGER, "value": {"value": "L-n"}}],
        id="manager changed",
    ),
    pytest.param({MANAGER: "m"}, {}, [{"op": "remove", "path": MANAGER}], id="manager removed"),
    # several at once, in order: phones, multi-valued, then active, userName, the table
    pytest.param(
        {DISPLAY_NAME: "A", MANAGER: "m", FORMATTED_NAME: "A B", OFFICE: "HQ"},
        {
            USER_NAME: "b@x.example",
            ACTIVE: False,
            DISPLAY_NAME: "B",
            MANAGER: "n",
            FORMATTED_NAME: "B C",
            WORK_EMAIL: "b@b.se",
            **WORK,
            "userType": "Employee",  # a SCIM attribute after the manager
        },
        [
            {
                "op": "add",
                "path": "phoneNumbers",
                "value": [{"type": "work", "value": WORK[WORK_PHONE]}],
            },
            {"op": "remove", "path": 'addresses[type eq "work"]'},
            {"op": "add", "path": "emails", "value": [{"type": "work", "value": "b@b.se"}]},
            {"op": "replace", "path": "active", "value": False},
            {"op": "replace", "path": "userName", "value": "b@x.example"},
            {"op": "replace", "path": "displayName", "value": "B"},
            {"op": "replace", "path": "name.formatted", "value": "B C"},
            {"op": "replace", "path": MANAGER, "value": {"value": "L-n"}},
            {"op": "add", "path": "userType", "value": "Employee"},
        ],
        id="everything at once, in order",
    ),
]


@pytest.mark.parametrize(("before", "after", "expected"), TRANSITIONS)
def test_patch_operations_of_each_transition(
    before: dict[str, Any], after: dict[str, Any], expected: list[dict[str, Any]]
) -> None:
    assert ops(before, after) == expected


@pytest.mark.parametrize(("before", "after", "expected"), TRANSITIONS)
def test_adoption_sends_the_same_but_removes_nothing(
    before: dict[str, Any], after: dict[str, Any], expected: list[dict[str, Any]]
) -> None:
    adopted = ops(before, after, remove_missing=False)
    kept = [op for op in expected if op["op"] != "remove" or op["path"] == MANAGER]
    if before.keys() == {MOBILE_PHONE} and after.keys() == {WORK_PHONE}:
        # the first number changes type: ours first, what Learnster holds behind it
        kept = [
            {
                "op": "replace",
                "path": "phoneNumbers",
                "value": [
                    {"type": "work", "value": WORK[WORK_PHONE]},
                    {"type": "mobile", "value": MOBILE[MOBILE_PHONE]},
                ],
            }
        ]
    assert adopted == kept


def test_adoption_replacing_the_first_number_keeps_only_what_ours_does_not_replace() -> None:
    # Learnster holds work and mobile; Graph has a mobile only: it goes first and replaces
    # Learnster's mobile, Learnster's work number is kept behind it.
    assert ops({**WORK, **MOBILE}, {MOBILE_PHONE: "+46709999999"}, remove_missing=False) == [
        {
            "op": "replace",
            "path": "phoneNumbers",
            "value": [
                {"type": "mobile", "value": "+46709999999"},
                {"type": "work", "value": WORK[WORK_PHONE]},
            ],
        }
    ]


def test_a_manager_not_in_learnster_yet_is_not_sent() -> None:
    assert user_patch_operations(BASE, {**BASE, MANAGER: "m"}, lambda gid: None) == []
    assert user_patch_operations(BASE, {**BASE, MANAGER: "m", TITLE: "T"}, lambda gid: None) == [
        {"op": "add", "path": "title", "value": "T"}
    ]


# -- POST /Users ----------------------------------------------------------------------------


def test_post_body_nests_sub_attributes_elements_and_the_enterprise_extension() -> None:
    flat = {
        **BASE,
        GIVEN_NAME: "A",
        FORMATTED_NAME: "A B",
        EXTERNAL_ID: "a",
        OFFICE: "HQ",
        LOCALITY: "Lund",
        WORK_EMAIL: "a@b.se",
        **MOBILE,
        **WORK,
        ORGANIZATION: "Contoso",
        MANAGER: "m",
    }
    assert build_user_resource(flat, "L-m") == {
        "schemas": [CORE_USER_SCHEMA, ENTERPRISE_SCHEMA],
        "userName": "a@x.example",
        "active": True,
        "externalId": "a",
        "name": {"givenName": "A", "formatted": "A B"},
        "addresses": [{"type": "work", "formatted": "HQ", "locality": "Lund"}],
        "emails": [{"type": "work", "value": "a@b.se"}],
        "phoneNumbers": [
            {"type": "work", "value": WORK[WORK_PHONE]},
            {"type": "mobile", "value": MOBILE[MOBILE_PHONE]},
        ],
        ENTERPRISE_SCHEMA: {"organization": "Contoso", "manager": {"value": "L-m"}},
    }


def test_post_body_without_enterprise_values_has_no_extension_object() -> None:
    assert build_user_resource({**BASE, MANAGER: "m"}, None) == {
        "schemas": [CORE_USER_SCHEMA, ENTERPRISE_SCHEMA],
        **BASE,
    }


def test_post_body_nests_a_path_at_its_first_dot() -> None:
    assert build_user_resource({"x.y.z": "v"}, None)["x"] == {"y.z": "v"}


# -- the flat form of what Learnster holds ---------------------------------------------------


def test_flatten_leaves_out_empty_values_primary_flags_and_elements_without_a_type() -> None:
    resource = {
        "userName": "a@x.example",
        "displayName": "",
        "title": None,
        "name": {"givenName": "", "familyName": "B"},
        "emails": "not a list",
        "addresses": [
            "not an element",
            {"formatted": "no type"},
            {"type": "work", "formatted": "HQ", "locality": "", "primary": True},
        ],
        "phoneNumbers": [{"type": "work", "value": "+46812345678", "primary": True}],
        ENTERPRISE_SCHEMA: {"organization": "Contoso"},
    }
    assert flatten_user_resource(resource) == {
        "userName": "a@x.example",
        "name.familyName": "B",
        OFFICE: "HQ",
        WORK_PHONE: "+46812345678",
        ORGANIZATION: "Contoso",
    }


def test_flatten_keeps_the_first_element_of_a_type_and_a_manager_with_a_value() -> None:
    resource = {
        "emails": [{"type": "work", "value": "a@b.se"}, {"type": "work", "value": "c@b.se"}],
        ENTERPRISE_SCHEMA: {"manager": {"value": "L-m"}},
    }
    assert flatten_user_resource(resource) == {WORK_EMAIL: "a@b.se", MANAGER: "L-m"}
    for manager in ({"value": ""}, "L-m", None):
        assert flatten_user_resource({ENTERPRISE_SCHEMA: {"manager": manager}}) == {}


# -- tags -----------------------------------------------------------------------------------


def test_group_post_body_carries_the_members_that_ride_along() -> None:
    assert group_resource("Sales", "g1") == {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Sales",
        "externalId": "g1",
    }
    assert group_resource("Sales", "g1", ["L-a", "L-b"]) == {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Sales",
        "externalId": "g1",
        "members": [{"value": "L-a"}, {"value": "L-b"}],
    }


def test_member_and_rename_operations() -> None:
    assert add_members_operation(["L-a", "L-b"]) == {
        "op": "add",
        "path": "members",
        "value": [{"value": "L-a"}, {"value": "L-b"}],
    }
    assert remove_member_operation("L-a") == {"op": "remove", "path": 'members[value eq "L-a"]'}
    assert rename_operation("Ops") == {"op": "replace", "path": "displayName", "value": "Ops"}


def test_member_patches_are_batched_adds_first() -> None:
    assert member_patches(["a", "b", "c"], ["x", "y", "z"], 2) == [
        [add_members_operation(["a", "b"])],
        [add_members_operation(["c"])],
        [remove_member_operation("x"), remove_member_operation("y")],
        [remove_member_operation("z")],
    ]
    assert member_patches([], [], 2) == []


@pytest.mark.parametrize(
    ("held", "sent", "same"),
    [
        ("Sales", "Sales", True),
        ("Sales (2)", "Sales", True),
        ("Sales (12)", "Sales", True),
        ("Sales (x)", "Sales", False),
        ("Sales (2) ", "Sales", False),
        ("Sales(2)", "Sales", False),
        ("sales", "Sales", False),
        ("Sales", "Sales (2)", False),
        ("A.B (2)", "A+B", False),  # the name sent is text, not a pattern
    ],
)
def test_is_same_tag_name(held: str, sent: str, same: bool) -> None:
    assert is_same_tag_name(held, sent) is same


@pytest.mark.parametrize(
    ("resource", "key"),
    [
        ({"emails": [{"type": "work", "value": "Anna@B.se"}]}, "anna@b.se"),
        (
            {"emails": [{"type": "home", "value": "a@b.se"}, {"type": "work", "value": "w@b.se"}]},
            "w@b.se",
        ),
        (
            {"emails": ["x", {"type": "work", "value": ""}, {"type": "work", "value": "w@b.se"}]},
            "w@b.se",
        ),
        ({"emails": [{"type": "work", "value": 7}]}, None),
        ({"emails": [{"type": "home", "value": "a@b.se"}]}, None),
        ({"emails": None}, None),
        ({}, None),
    ],
)
def test_work_email_key(resource: dict[str, Any], key: str | None) -> None:
    assert work_email_key(resource) == key
