"""The mapping table and the SCIM PATCH operations derived from it."""

from __future__ import annotations

import pytest

from syncd.core.decode import decode_user
from syncd.core.mapping import (
    ACTIVE,
    COUNTRY,
    ENTERPRISE_SCHEMA,
    EXTERNAL_ID,
    FORMATTED_NAME,
    MANAGER,
    MOBILE_PHONE,
    OFFICE,
    ORGANIZATION,
    WORK_EMAIL,
    WORK_PHONE,
    MappingOptions,
    map_user,
    normalise_phone,
    validate_overrides,
)
from syncd.core.messages import build_user_resource, flatten_user_resource, user_patch_operations

GRAPH_USER = {
    "id": "u1",
    "userPrincipalName": "Anna.Berg@contoso.example",
    "accountEnabled": True,
    "displayName": "Anna Berg",
    "givenName": "Anna",
    "surname": "Berg",
    "jobTitle": "Engineer",
    "mail": "anna.berg@contoso.example",
    "mailNickname": "anna.berg",
    "officeLocation": "Stockholm HQ",
    "streetAddress": "Sveavägen 1",
    "city": "Stockholm",
    "postalCode": "111 57",
    "state": "Stockholm County",
    "country": "Sweden",
    "businessPhones": ["08-123 456 78"],
    "mobilePhone": "+46 70 123 45 67",
    "companyName": "Contoso AB",
    "department": "R&D",
    "employeeId": "E1",
    "preferredLanguage": "sv-SE",
    "faxNumber": None,
    "manager": {"id": "m1"},
}


def mapped(obj: dict[str, object], region: str = "SE") -> dict[str, object]:
    decoded = decode_user(obj)
    assert decoded.user is not None
    attrs, _ = map_user(decoded.user, MappingOptions(phone_default_region=region))
    return attrs


def test_every_row_of_the_learnster_table() -> None:
    attrs = mapped(GRAPH_USER)
    assert attrs == {
        "userName": "Anna.Berg@contoso.example",
        ACTIVE: True,
        "displayName": "Anna Berg",
        "title": "Engineer",
        WORK_EMAIL: "anna.berg@contoso.example",
        "name.givenName": "Anna",
        "name.familyName": "Berg",
        FORMATTED_NAME: "Anna Berg",
        OFFICE: "Stockholm HQ",
        'addresses[type eq "work"].streetAddress': "Sveavägen 1",
        'addresses[type eq "work"].locality': "Stockholm",
        'addresses[type eq "work"].postalCode': "111 57",
        COUNTRY: "Sweden",
        WORK_PHONE: "+46812345678",
        MOBILE_PHONE: "+46701234567",
        EXTERNAL_ID: "anna.berg",
        ORGANIZATION: "Contoso AB",
        MANAGER: "m1",
    }


def test_national_phone_without_region_is_dropped_with_a_warning_naming_user_and_field() -> None:
    decoded = decode_user({**GRAPH_USER, "country": None})
    assert decoded.user is not None
    attrs, problems = map_user(decoded.user, MappingOptions())
    assert WORK_PHONE not in attrs
    assert attrs[MOBILE_PHONE] == "+46701234567"
    assert len(problems) == 1
    assert problems[0].object_id == "u1"
    assert problems[0].field == "businessPhones"
    assert "08-123 456 78" in problems[0].message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"country": "United States"}, "+12125550186"),
        ({"country": "US"}, "+12125550186"),
        ({"usageLocation": "US", "country": "Sverige"}, "+12125550186"),
        ({"country": "Atlantis"}, None),  # unknown country: the site default (SE) applies
    ],
)
def test_national_numbers_are_read_in_the_users_own_country(
    extra: dict[str, str], expected: str | None
) -> None:
    user = {"id": "u9", "userPrincipalName": "u9@x.example", "businessPhones": ["(212) 555-0186"]}
    assert mapped({**user, **extra}, region="SE").get(WORK_PHONE) == expected


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+46 8 123 456 78", "", "+46812345678"),
        ("070-123 45 67", "SE", "+46701234567"),
        ("(201) 555-0123", "US", "+12015550123"),
        ("12", "SE", None),
        ("n/a", "SE", None),
        ("+4", "", None),
    ],
)
def test_phone_normalisation(raw: str, region: str, expected: str | None) -> None:
    assert normalise_phone(raw, region) == expected


def test_empty_values_are_left_out_never_null() -> None:
    attrs = mapped({"id": "u2", "userPrincipalName": "x@y.example", "jobTitle": "  ", "mail": None})
    assert attrs == {"userName": "x@y.example", ACTIVE: True}


def test_user_without_upn_is_skipped_with_an_error_naming_the_object() -> None:
    decoded = decode_user({"id": "abc-123", "displayName": "No UPN"})
    assert decoded.user is None
    assert [(p.object_id, p.field, p.severity) for p in decoded.problems] == [
        ("abc-123", "userPrincipalName", "error")
    ]


def test_non_string_value_drops_only_that_field() -> None:
    decoded = decode_user({"id": "u3", "userPrincipalName": "u3@x.example", "jobTitle": 42})
    assert decoded.user is not None
    assert decoded.user.properties.get("jobTitle", "") == ""
    assert decoded.problems[0].field == "jobTitle"


def test_self_manager_is_ignored() -> None:
    decoded = decode_user(
        {"id": "u4", "userPrincipalName": "u4@x.example", "manager": {"id": "u4"}}
    )
    assert decoded.user is not None
    assert decoded.user.manager_id is None


def test_post_body_work_phone_first_and_manager_rides_along() -> None:
    body = build_user_resource(mapped(GRAPH_USER), "scim-m1")
    assert body["schemas"] == [
        "urn:ietf:params:scim:schemas:core:2.0:User",
        ENTERPRISE_SCHEMA,
    ]
    assert body["phoneNumbers"] == [
        {"type": "work", "value": "+46812345678"},
        {"type": "mobile", "value": "+46701234567"},
    ]
    assert body["addresses"] == [
        {
            "type": "work",
            "formatted": "Stockholm HQ",
            "streetAddress": "Sveavägen 1",
            "locality": "Stockholm",
            "postalCode": "111 57",
            "country": "Sweden",
        }
    ]
    assert body["emails"] == [{"type": "work", "value": "anna.berg@contoso.example"}]
    assert body["name"] == {"givenName": "Anna", "familyName": "Berg", "formatted": "Anna Berg"}
    assert body[ENTERPRISE_SCHEMA] == {
        "organization": "Contoso AB",
        "manager": {"value": "scim-m1"},
    }
    assert body["active"] is True


def test_post_body_leaves_manager_out_when_not_yet_in_learnster() -> None:
    body = build_user_resource(mapped(GRAPH_USER), None)
    assert body[ENTERPRISE_SCHEMA] == {"organization": "Contoso AB"}


def test_flatten_is_the_inverse_of_build() -> None:
    attrs = mapped(GRAPH_USER)
    flat = flatten_user_resource(build_user_resource(attrs, "m1"))
    assert flat == attrs


def test_one_patch_operation_per_changed_attribute() -> None:
    before = mapped(GRAPH_USER)
    after = {**before, "title": "Lead Engineer", WORK_EMAIL: "a@b.se"}
    ops = user_patch_operations(before, after, lambda gid: f"scim-{gid}")
    assert ops == [
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "a@b.se"},
        {"op": "replace", "path": "title", "value": "Lead Engineer"},
    ]


def test_add_whole_element_where_the_target_has_none_and_remove_when_gone() -> None:
    base = {"userName": "a@x", ACTIVE: True}
    ops = user_patch_operations(base, {**base, OFFICE: "HQ", COUNTRY: "Sweden"}, lambda g: g)
    assert ops == [
        {
            "op": "add",
            "path": "addresses",
            "value": [{"type": "work", "formatted": "HQ", "country": "Sweden"}],
        }
    ]
    ops = user_patch_operations({**base, WORK_EMAIL: "a@b.se"}, base, lambda g: g)
    assert ops == [{"op": "remove", "path": 'emails[type eq "work"]'}]


def test_phones_keep_the_work_number_first_because_learnster_keeps_only_the_first() -> None:
    base = {"userName": "a@x", ACTIVE: True}
    work, mobile = {WORK_PHONE: "+4681234567"}, {MOBILE_PHONE: "+46701234567"}
    # none before: one add, work first
    assert user_patch_operations(base, {**base, **work, **mobile}, lambda g: g) == [
        {
            "op": "add",
            "path": "phoneNumbers",
            "value": [
                {"type": "work", "value": "+4681234567"},
                {"type": "mobile", "value": "+46701234567"},
            ],
        }
    ]
    # the first number changes type: the whole list is replaced, in order
    assert user_patch_operations({**base, **mobile}, {**base, **work, **mobile}, lambda g: g) == [
        {
            "op": "replace",
            "path": "phoneNumbers",
            "value": [
                {"type": "work", "value": "+4681234567"},
                {"type": "mobile", "value": "+46701234567"},
            ],
        }
    ]
    assert user_patch_operations({**base, **work, **mobile}, {**base, **mobile}, lambda g: g) == [
        {
            "op": "replace",
            "path": "phoneNumbers",
            "value": [{"type": "mobile", "value": "+46701234567"}],
        }
    ]
    # same first number type: filtered paths, as Entra sends them
    assert user_patch_operations(
        {**base, **work}, {**base, WORK_PHONE: "+4687654321"}, lambda g: g
    ) == [{"op": "replace", "path": 'phoneNumbers[type eq "work"].value', "value": "+4687654321"}]
    assert user_patch_operations({**base, **work}, {**base, **work, **mobile}, lambda g: g) == [
        {
            "op": "add",
            "path": "phoneNumbers",
            "value": [{"type": "mobile", "value": "+46701234567"}],
        }
    ]
    assert user_patch_operations({**base, **work, **mobile}, base, lambda g: g) == [
        {"op": "remove", "path": 'phoneNumbers[type eq "work"]'},
        {"op": "remove", "path": 'phoneNumbers[type eq "mobile"]'},
    ]


def test_manager_replace_and_remove_and_deactivate() -> None:
    base = {"userName": "a@x", ACTIVE: True}
    ops = user_patch_operations(base, {**base, MANAGER: "m2"}, lambda gid: "L-" + gid)
    assert ops == [{"op": "replace", "path": MANAGER, "value": {"value": "L-m2"}}]
    ops = user_patch_operations({**base, MANAGER: "m2"}, base, lambda gid: None)
    assert ops == [{"op": "remove", "path": MANAGER}]
    ops = user_patch_operations(base, {**base, ACTIVE: False}, lambda gid: None)
    assert ops == [{"op": "replace", "path": "active", "value": False}]


def test_adoption_leaves_attributes_graph_has_no_value_for() -> None:
    learnster = {"userName": "ANNA@x", ACTIVE: True, "title": "Boss", WORK_PHONE: "+4681234567"}
    desired = {"userName": "anna@x", ACTIVE: True, "displayName": "Anna"}
    ops = user_patch_operations(learnster, desired, lambda gid: None, remove_missing=False)
    assert ops == [
        {"op": "replace", "path": "userName", "value": "anna@x"},
        {"op": "add", "path": "displayName", "value": "Anna"},
    ]


def test_overrides_drop_and_remap() -> None:
    decoded = decode_user(GRAPH_USER)
    assert decoded.user is not None
    options = MappingOptions("SE", {ORGANIZATION: "", "title": "department"})
    attrs, _ = map_user(decoded.user, options)
    assert ORGANIZATION not in attrs
    assert attrs["title"] == "R&D"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"userName": ""}, "cannot be dropped"),
        ({"nickName": "mail"}, "not a SCIM attribute"),
        ({"title": "shoeSize"}, "not a Graph user property"),
        ({MANAGER: "mail"}, "derived"),
    ],
)
def test_invalid_overrides_are_refused(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_overrides(overrides)


def test_an_override_sends_any_graph_property_extension_attributes_included() -> None:
    cost_center = f"{ENTERPRISE_SCHEMA}:costCenter"
    extension = "extension_0123456789abcdef0123456789abcdef_isContractor"
    raw = {
        **GRAPH_USER,
        "onPremisesExtensionAttributes": {
            "extensionAttribute3": "CC-4711",
            "extensionAttribute4": None,
        },
        extension: True,
        "employeeType": "Contractor",
    }
    decoded = decode_user(raw)
    assert decoded.user is not None
    overrides = {
        cost_center: "onPremisesExtensionAttributes.extensionAttribute3",
        f"{ENTERPRISE_SCHEMA}:division": extension,
        "title": "employeeType",
        f"{ENTERPRISE_SCHEMA}:department": "onPremisesExtensionAttributes.extensionAttribute4",
    }
    validate_overrides(overrides)
    attrs, problems = map_user(decoded.user, MappingOptions("SE", overrides))
    assert attrs[cost_center] == "CC-4711"
    assert attrs[f"{ENTERPRISE_SCHEMA}:division"] == "true"  # a boolean as Graph writes it
    assert attrs["title"] == "Contractor"
    assert f"{ENTERPRISE_SCHEMA}:department" not in attrs  # null: left out, never sent as null
    assert problems == []
    resource = build_user_resource(attrs, None)
    assert resource[ENTERPRISE_SCHEMA]["costCenter"] == "CC-4711"
    with pytest.raises(ValueError, match="not a Graph user property"):
        validate_overrides({cost_center: "onPremisesExtensionAttributes.extensionAttribute16"})
