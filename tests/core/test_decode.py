"""Graph JSON to records: each kind of bad value with the exact problem it is reported as
(object, field, message), delta objects merged over what the snapshot holds, and rounds."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.core.decode import (
    clean_text,
    decode_delta_user,
    decode_user,
    merge_delta_object,
    usable_id,
)
from syncd.core.records import GROUP_TYPE, USER_TYPE, DeltaRound, DirectoryUser, Presence, Problem

UID = "u1"
BASE: dict[str, Any] = {"id": UID, "userPrincipalName": "a@x.example"}


@pytest.mark.parametrize(
    ("raw", "cleaned", "notes"),
    [
        ("plain", "plain", []),
        ("  padded  ", "padded", []),
        ("a\ud800b", "a\ufffdb", ["invalid UTF-16 replaced"]),
        ("a\r\n\tb", "a b", ["line breaks or tabs replaced by spaces"]),
        ("a\x00b\x7f", "ab", ["control characters removed"]),
        (
            "\ud800\n\x01x",
            "\ufffd x",
            [
                "invalid UTF-16 replaced",
                "line breaks or tabs replaced by spaces",
                "control characters removed",
            ],
        ),
        ("emoji 🎉", "emoji 🎉", []),
    ],
)
def test_clean_text(raw: str, cleaned: str, notes: list[str]) -> None:
    assert clean_text(raw) == (cleaned, notes)


@pytest.mark.parametrize(
    ("value", "usable"),
    [
        ("u1", True),
        ("Ünïcode-id", True),
        ("bad\ud800", False),
        ("   ", False),
        ("", False),
        (7, False),
        (None, False),
    ],
)
def test_usable_id(value: Any, usable: bool) -> None:
    assert usable_id(value) is usable


# (the record's fields beyond BASE, the properties it keeps, the problems)
PROPERTY_CASES = [
    pytest.param(
        {"jobTitle": 7},
        {},
        [Problem(UID, "jobTitle", "expected a string, got int")],
        id="not a string",
    ),
    pytest.param(
        {"jobTitle": "Boss\nof all"},
        {"jobTitle": "Boss of all"},
        [Problem(UID, "jobTitle", "sent cleaned (line breaks or tabs replaced by spaces)")],
        id="cleaned",
    ),
    pytest.param(
        {"jobTitle": "\x01\ud800"},
        {"jobTitle": "\ufffd"},
        [
            Problem(
                UID,
                "jobTitle",
                "sent cleaned (invalid UTF-16 replaced, control characters removed)",
            )
        ],
        id="cleaned twice",
    ),
    pytest.param(
        {"jobTitle": "\x01\x02"},
        {},
        [
            Problem(
                UID, "jobTitle", "nothing left after cleaning: dropped (control characters removed)"
            )
        ],
        id="nothing left",
    ),
    pytest.param(
        {"jobTitle": "x" * 257},
        {},
        [Problem(UID, "jobTitle", "257 characters (over 256): dropped")],
        id="too long",
    ),
    pytest.param({"jobTitle": "x" * 256}, {"jobTitle": "x" * 256}, [], id="at the limit"),
    pytest.param(
        {"mail": "not-an-address"},
        {},
        [Problem(UID, "mail", "'not-an-address' is not an e-mail address: dropped")],
        id="mail not an address",
    ),
    pytest.param({"jobTitle": None}, {}, [], id="null"),
]


@pytest.mark.parametrize(("fields", "kept", "problems"), PROPERTY_CASES)
def test_a_bad_property_is_dropped_or_cleaned_with_its_problem(
    fields: dict[str, Any], kept: dict[str, str], problems: list[Problem]
) -> None:
    decoded = decode_user({**BASE, **fields})
    assert decoded.user is not None
    assert decoded.user.properties == {"userPrincipalName": "a@x.example", **kept}
    assert decoded.problems == problems


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({}, Problem("<unknown>", "id", "object without an id: skipped", "error")),
        ({"id": "  "}, Problem("<unknown>", "id", "object without an id: skipped", "error")),
        (
            {"id": "bad\ud800"},
            Problem(
                "<unknown>", "id", "object id 'bad\\ud800' is not valid Unicode: skipped", "error"
            ),
        ),
        (
            {"id": UID},
            Problem(UID, "userPrincipalName", "missing or unusable: user skipped", "error"),
        ),
        (
            {"id": UID, "userPrincipalName": "nobody"},
            Problem(
                UID,
                "userPrincipalName",
                "'nobody' is not an address Learnster can use as userName: user skipped",
                "error",
            ),
        ),
    ],
)
def test_a_record_that_cannot_be_keyed_is_skipped(record: dict[str, Any], problem: Problem) -> None:
    decoded = decode_user(record)
    assert decoded.user is None
    assert decoded.problems[-1] == problem


@pytest.mark.parametrize(
    ("value", "enabled", "problems"),
    [
        (True, True, []),
        (False, False, []),
        (" TRUE ", True, [Problem(UID, "accountEnabled", "string ' TRUE ' read as a boolean")]),
        ("False", False, [Problem(UID, "accountEnabled", "string 'False' read as a boolean")]),
        (
            "yes",
            True,
            [Problem(UID, "accountEnabled", "expected a boolean, got 'yes': taken as true")],
        ),
        (0, True, [Problem(UID, "accountEnabled", "expected a boolean, got 0: taken as true")]),
    ],
)
def test_account_enabled(value: Any, enabled: bool, problems: list[Problem]) -> None:
    decoded = decode_user({**BASE, "accountEnabled": value})
    assert decoded.user is not None
    assert decoded.user.account_enabled is enabled
    assert decoded.problems == problems


def test_business_phones_and_the_manager() -> None:
    decoded = decode_user({**BASE, "businessPhones": ["+1", 7, "", "+2\n"], "manager": {"id": "m"}})
    assert decoded.user is not None
    assert decoded.user.business_phones == ("+1", "+2")
    assert decoded.user.manager_id == "m"
    assert decoded.problems == [
        Problem(UID, "businessPhones", "expected a string, got int"),
        Problem(UID, "businessPhones", "sent cleaned (line breaks or tabs replaced by spaces)"),
    ]
    decoded = decode_user({**BASE, "businessPhones": "+1", "manager": {"id": UID}})
    assert decoded.user is not None
    assert decoded.user.business_phones == ()
    assert decoded.user.manager_id is None
    assert decoded.problems == [
        Problem(UID, "businessPhones", "expected a list: dropped"),
        Problem(UID, "manager", "user is their own manager: ignored"),
    ]


def test_other_selected_properties_are_kept_as_extra_without_annotations() -> None:
    decoded = decode_user(
        {
            **BASE,
            "employeeType": "Contractor",
            "@odata.etag": "W/1",
            "manager@delta": [],
            "manager": None,
        }
    )
    assert decoded.user is not None
    assert decoded.user.extra == {"employeeType": "Contractor"}


# -- delta objects --------------------------------------------------------------------------


def test_a_delta_object_is_merged_over_what_the_snapshot_holds() -> None:
    base = DirectoryUser(
        UID,
        {"userPrincipalName": "a@x.example", "jobTitle": "T"},
        business_phones=("+1",),
        manager_id="m",
        extra={"employeeType": "E"},
    )
    decoded = decode_delta_user({"displayName": "A"}, base)
    assert decoded.user == DirectoryUser(
        UID,
        {"userPrincipalName": "a@x.example", "jobTitle": "T", "displayName": "A"},
        business_phones=("+1",),
        manager_id="m",
        extra={"employeeType": "E"},
    )
    assert decoded.problems == []
    decoded = decode_delta_user(
        {"id": UID, "jobTitle": None}, DirectoryUser(UID, {"userPrincipalName": "a@x.example"})
    )
    assert decoded.user == DirectoryUser(UID, {"userPrincipalName": "a@x.example"})


@pytest.mark.parametrize(
    ("manager_delta", "manager"),
    [
        ([{"id": "m2"}], "m2"),
        ([{"id": "m"}, {"id": "m", "@removed": {"reason": "deleted"}}], None),
        (["garbage", {"id": "m2"}], "m2"),
        ([{"id": ""}, {"id": "m2"}], "m2"),
        ([{"id": "m2"}, {"id": None}], "m2"),
        ([], None),
        ("garbage", None),
    ],
)
def test_manager_delta(manager_delta: Any, manager: str | None) -> None:
    base = DirectoryUser(UID, {"userPrincipalName": "a@x.example"}, manager_id="m")
    decoded = decode_delta_user({"id": UID, "manager@delta": manager_delta}, base)
    assert decoded.user is not None
    assert decoded.user.manager_id == manager


def test_merge_delta_object_folds_repeats_removals_and_members() -> None:
    result = DeltaRound()
    for obj in [
        "garbage",
        {"id": None},
        {"id": "g", "displayName": "G", "@odata.etag": "W/1"},
        {
            "id": "g",
            "members@delta": [
                {"@odata.type": USER_TYPE, "id": "u1"},
                {"id": "u2"},
                "garbage",
                {"@odata.type": GROUP_TYPE, "id": "h", "@removed": {"reason": "deleted"}},
            ],
        },
        {"id": "g", "members@delta": None, "description": "D"},
        {"id": "gone", "displayName": "Gone"},
        {"id": "gone", "@removed": {"reason": "deleted"}},
        {"id": "back", "@removed": {"reason": "changed"}},
        {"id": "back", "displayName": "Back"},
    ]:
        merge_delta_object(result, obj)
    assert result.objects == {
        "g": {
            "id": "g",
            "displayName": "G",
            "members@delta": [(USER_TYPE, "u1", False), ("", "u2", False), (GROUP_TYPE, "h", True)],
            "description": "D",
        },
        "back": {"id": "back", "displayName": "Back"},
    }
    assert result.removed == {"gone": Presence.DELETED}
