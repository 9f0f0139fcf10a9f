"""The mapping's edges (DESIGN.md §4): the table and its overrides, values beyond strings,
phone problems' messages, and what Learnster keeps of what it is sent."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.core.mapping import (
    ACTIVE,
    DEFAULT_USER_MAPPING,
    ENTERPRISE_SCHEMA,
    FORMATTED_NAME,
    MOBILE_PHONE,
    ORGANIZATION,
    TITLE,
    USER_NAME,
    WORK_PHONE,
    MappingOptions,
    learnster_keeps,
    map_user,
    selected_attributes,
    validate_overrides,
)
from syncd.core.records import DirectoryUser, Problem

COST_CENTER = f"{ENTERPRISE_SCHEMA}:costCenter"


def test_the_table_is_learnsters_with_the_overrides_applied() -> None:
    assert MappingOptions().table() == {
        **DEFAULT_USER_MAPPING,
        FORMATTED_NAME: "(givenName surname)",
    }
    table = MappingOptions(overrides={ORGANIZATION: "", COST_CENTER: "employeeType"}).table()
    assert ORGANIZATION not in table
    assert table[COST_CENTER] == "employeeType"


def test_every_override_is_checked_also_after_a_dropped_one() -> None:
    validate_overrides({ORGANIZATION: "", TITLE: "department"})
    with pytest.raises(ValueError, match="shoeSize"):
        validate_overrides({ORGANIZATION: "", TITLE: "shoeSize"})


def test_selected_attributes_are_the_overrides_beyond_the_string_properties() -> None:
    overrides = {
        COST_CENTER: "onPremisesExtensionAttributes.extensionAttribute3",
        TITLE: "department",  # read with every user
        ORGANIZATION: "",  # dropped
        f"{ENTERPRISE_SCHEMA}:division": "employeeType",
        f"{ENTERPRISE_SCHEMA}:department": "employeeType",
    }
    assert selected_attributes(overrides) == (
        "employeeType",
        "onPremisesExtensionAttributes.extensionAttribute3",
    )
    assert selected_attributes({}) == ()


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (["first@x.example", "second@x.example"], "first@x.example"),
        ([], None),
        ([None], None),
        (True, "true"),
        (False, "false"),
        (7, "7"),
        ("  padded  ", "padded"),
        ({"nested": "object"}, None),
        (None, None),
    ],
)
def test_a_property_beyond_the_strings_is_sent_as_text(value: Any, sent: str | None) -> None:
    user = DirectoryUser("u1", {"userPrincipalName": "a@x.example"}, extra={"otherMails": value})
    attrs, problems = map_user(user, MappingOptions(overrides={COST_CENTER: "otherMails"}))
    assert attrs.get(COST_CENTER) == sent
    assert problems == []


def test_string_properties_are_sent_as_the_record_holds_them() -> None:
    user = DirectoryUser("u1", {"userPrincipalName": "a@x.example", "jobTitle": " Boss "})
    attrs, _ = map_user(user, MappingOptions())
    assert attrs == {USER_NAME: "a@x.example", TITLE: " Boss ", ACTIVE: True}


def test_a_record_without_a_upn_gets_no_user_name() -> None:
    attrs, _ = map_user(DirectoryUser("u1", {"displayName": "A"}), MappingOptions())
    assert attrs == {"displayName": "A", ACTIVE: True}


def test_a_dropped_phone_number_is_reported_with_the_region_it_was_read_in() -> None:
    user = DirectoryUser(
        "u1",
        {"userPrincipalName": "a@x.example", "mobilePhone": "12", "usageLocation": "SE"},
        business_phones=("n/a",),
    )
    attrs, problems = map_user(user, MappingOptions())
    assert WORK_PHONE not in attrs
    assert MOBILE_PHONE not in attrs
    assert problems == [
        Problem(
            "u1",
            "businessPhones",
            "phone number 'n/a' is not valid E.164 (read as a SE number): dropped",
        ),
        Problem(
            "u1",
            "mobilePhone",
            "phone number '12' is not valid E.164 (read as a SE number): dropped",
        ),
    ]
    user = DirectoryUser("u2", {"userPrincipalName": "b@x.example", "mobilePhone": "070-123 45 67"})
    _, problems = map_user(user, MappingOptions())
    assert problems == [
        Problem(
            "u2",
            "mobilePhone",
            "phone number '070-123 45 67' is not valid E.164 (no region known): dropped",
        )
    ]


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ({WORK_PHONE: "+1", MOBILE_PHONE: "+2", ACTIVE: False}, {WORK_PHONE: "+1", ACTIVE: False}),
        ({MOBILE_PHONE: "+2"}, {MOBILE_PHONE: "+2", ACTIVE: True}),
        ({WORK_PHONE: "+1"}, {WORK_PHONE: "+1", ACTIVE: True}),
        ({TITLE: "T", ACTIVE: True}, {TITLE: "T", ACTIVE: True}),
    ],
)
def test_learnster_keeps_the_first_number_and_is_active_unless_told(
    sent: dict[str, Any], kept: dict[str, Any]
) -> None:
    before = dict(sent)
    assert learnster_keeps(sent) == kept
    assert sent == before  # a copy, never the argument changed
