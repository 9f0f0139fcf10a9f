"""The directory's records: their stored JSON forms (the snapshot's rows), equality, values a
filter or an override reads, and what syncd selects of each user."""

from __future__ import annotations

from syncd.core.records import (
    USER_SELECT,
    Assignments,
    DirectoryGroup,
    DirectoryUser,
    Entry,
    Presence,
    learnster_user_name,
    selected_property,
    user_name_key,
    user_select,
)


def test_a_user_is_enabled_and_has_no_upn_unless_told() -> None:
    user = DirectoryUser("u1", {})
    assert user.account_enabled is True
    assert user.user_principal_name == ""
    assert user.properties == {}
    assert user.to_json() == {
        "id": "u1",
        "accountEnabled": True,
        "businessPhones": [],
        "managerId": None,
    }


def test_user_json_is_the_stored_form_and_reads_back() -> None:
    user = DirectoryUser(
        "u1",
        {"userPrincipalName": "a@x.example", "displayName": "Åsa", "city": ""},
        account_enabled=False,
        business_phones=("+1", "+2"),
        manager_id="m",
        extra={"employeeType": "Contractor", "gone": None},
    )
    stored = {
        "id": "u1",
        "accountEnabled": False,
        "businessPhones": ["+1", "+2"],
        "managerId": "m",
        "displayName": "Åsa",
        "userPrincipalName": "a@x.example",
        "extra": {"employeeType": "Contractor"},
    }
    assert user.to_json() == stored
    assert DirectoryUser.from_json(stored) == user
    assert DirectoryUser.from_json({"id": "u2"}) == DirectoryUser("u2", {})
    empty = {
        "id": "u3",
        "accountEnabled": None,
        "businessPhones": None,
        "managerId": "",
        "city": "",
    }
    assert DirectoryUser.from_json(empty) == DirectoryUser("u3", {}, account_enabled=False)


def test_users_are_equal_by_value_and_hash_alike() -> None:
    a = DirectoryUser("u1", {"userPrincipalName": "a@x.example"}, extra={"x": None})
    b = DirectoryUser("u1", {"userPrincipalName": "a@x.example"})
    assert a == b
    assert hash(a) == hash(b)
    assert a.extra == {}
    assert a != DirectoryUser("u1", {"userPrincipalName": "b@x.example"})
    assert a != "u1"
    assert a != DirectoryUser("u1", {"userPrincipalName": "a@x.example"}, extra={"x": 1})


def test_values_read_properties_extras_and_members_of_complex_ones() -> None:
    user = DirectoryUser(
        "u1",
        {"userPrincipalName": "a@x.example", "department": "Sales"},
        account_enabled=False,
        business_phones=("+1",),
        extra={"onPremisesExtensionAttributes": {"extensionAttribute7": "x"}, "otherMails": ["o"]},
    )
    assert user.values(
        [
            "id",
            "accountEnabled",
            "businessPhones",
            "department",
            "otherMails",
            "onPremisesExtensionAttributes.extensionAttribute7",
            "onPremisesExtensionAttributes.extensionAttribute8",
            "department.sub",
            "jobTitle",
            "jobTitle.sub",
        ]
    ) == {
        "id": "u1",
        "accountEnabled": False,
        "businessPhones": ["+1"],
        "department": "Sales",
        "otherMails": ["o"],
        "onPremisesExtensionAttributes.extensionAttribute7": "x",
        "onPremisesExtensionAttributes.extensionAttribute8": None,
        "department.sub": None,
        "jobTitle": None,
        "jobTitle.sub": None,
    }


def test_group_json_is_the_stored_form_and_reads_back() -> None:
    group = DirectoryGroup("g1", "Sales", frozenset({"b", "a"}), frozenset({"h"}))
    stored = {"id": "g1", "displayName": "Sales", "userMembers": ["a", "b"], "groupMembers": ["h"]}
    assert group.to_json() == stored
    assert DirectoryGroup.from_json(stored) == group
    assert DirectoryGroup.from_json({"id": "g2"}) == DirectoryGroup("g2", "")
    nulls = {"id": "g3", "displayName": None, "userMembers": None, "groupMembers": None}
    assert DirectoryGroup.from_json(nulls) == DirectoryGroup("g3", "")


def test_assignments_json_is_the_stored_form_and_reads_back() -> None:
    assignments = Assignments("sp", frozenset({"u2", "u1"}), frozenset({"g"}))
    stored = {"servicePrincipal": "sp", "users": ["u1", "u2"], "groups": ["g"]}
    assert assignments.to_json() == stored
    assert Assignments.from_json(stored) == assignments
    assert Assignments.from_json({"servicePrincipal": 7}) == Assignments("7")
    assert Assignments.from_json({"servicePrincipal": "sp", "users": None, "groups": None}) == (
        Assignments("sp")
    )


def test_what_is_selected_of_each_user() -> None:
    assert selected_property("onPremisesExtensionAttributes.extensionAttribute7") == (
        "onPremisesExtensionAttributes"
    )
    assert selected_property("employeeOrgData.costCenter.more") == "employeeOrgData"
    assert selected_property("employeeType") == "employeeType"
    assert user_select() == USER_SELECT
    assert user_select(
        [
            "employeeType",
            "onPremisesExtensionAttributes.extensionAttribute7",
            "onPremisesExtensionAttributes.extensionAttribute1",
            "department",  # selected anyway
            "accountEnabled",
        ]
    ) == (*USER_SELECT, "employeeType", "onPremisesExtensionAttributes")


def test_guest_names() -> None:
    guest = "anna_fabrikam.com#EXT#@contoso.onmicrosoft.com"
    assert learnster_user_name(guest) == "anna_fabrikam.com@contoso.onmicrosoft.com"
    assert learnster_user_name("anna_f.com#ext#@c.example") == "anna_f.com@c.example"
    assert user_name_key("Anna_F.com#EXT#@C.example") == "anna_f.com@c.example"
    assert DirectoryUser("u", {"userType": "GUEST"}).is_guest
    assert not DirectoryUser("u", {"userType": "Member"}).is_guest
    assert not DirectoryUser("u", {}).is_guest


def test_presence_of_a_removal_reason() -> None:
    assert Presence.of_removed_reason("deleted") is Presence.DELETED
    assert Presence.of_removed_reason("changed") is Presence.RECYCLED
    assert Presence.of_removed_reason(None) is Presence.RECYCLED
    assert Entry(DirectoryGroup("g", "G"), Presence.PRESENT).present
    assert not Entry(DirectoryGroup("g", "G"), Presence.RECYCLED).present
