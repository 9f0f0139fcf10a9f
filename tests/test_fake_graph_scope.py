"""The fake tenant's data for scoping: guests, scoping attributes, service principals (over HTTP)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from syncd.fakes.generator import Organisation, generate_organisation
from syncd.fakes.graph import FakeGraph
from syncd.fakes.scoping import (
    COST_CENTER,
    EXTENSION_APP_ID,
    EXTENSION_ATTRIBUTES,
    GUEST_SHARE,
    IS_CONTRACTOR,
    guest_upn,
)
from tests.test_fake_graph import TOKEN, _delta_round, _error, serve

SCOPE_SELECT = ",".join(
    ("id", "userPrincipalName", "userType", "employeeType", "onPremisesExtensionAttributes",
     COST_CENTER, IS_CONTRACTOR)
)  # fmt: skip


def _digest(org: Organisation) -> str:
    blob = json.dumps({"users": org.users, "groups": org.groups}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@pytest.fixture(scope="module")
def plain() -> Organisation:
    return generate_organisation(300, seed=42)


@pytest.fixture(scope="module")
def scoped() -> Organisation:
    return generate_organisation(300, seed=42, guest_share=GUEST_SHARE, scope_attributes=True)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as http:
        yield http


@pytest.fixture
def fake(scoped: Organisation) -> Iterator[FakeGraph]:
    with serve(scoped) as graph:
        yield graph


def _guests(org: Organisation) -> list[dict[str, Any]]:
    return [u for u in org.users if u.get("userType") == "Guest"]


# ---------------------------------------------------------------- the generator


def test_without_the_new_options_the_organisation_is_what_it_was(plain: Organisation) -> None:
    # the digest of generate_organisation(300, seed=42) before guests and attributes existed
    assert _digest(plain) == "75ee7ea681eace1e3686557490b765ea0916cef6af835bb048bc890dd9b61ca7"


def test_guests_and_attributes_leave_every_group_and_other_user_as_it_was(
    plain: Organisation, scoped: Organisation
) -> None:
    assert scoped.groups == plain.groups
    before = {u["id"]: u for u in plain.users}
    assert [u["id"] for u in scoped.users] == list(before)
    changed = {u["id"] for u in scoped.users if any(u[k] != v for k, v in before[u["id"]].items())}
    guests = {u["id"] for u in _guests(scoped)}
    underscored = {u["id"] for u in scoped.users if "_" in u["userPrincipalName"]} - guests
    assert len(underscored) == 1
    assert changed == guests | underscored
    for user in scoped.users:
        assert user["userType"] in ("Member", "Guest")
        assert set(user) >= set(before[user["id"]])


def test_guests_are_shaped_as_entra_makes_them(plain: Organisation, scoped: Organisation) -> None:
    guests = _guests(scoped)
    assert len(guests) == round(300 * GUEST_SHARE)
    managers = {u["managerId"] for u in scoped.users}
    members_of = {u["id"]: 0 for u in guests}
    for group in scoped.groups:
        for member in group["memberIds"]:
            if member in members_of:
                members_of[member] += 1
    for guest in guests:
        address = guest["mail"]
        local, _, partner = address.partition("@")
        assert guest["userPrincipalName"] == f"{local}_{partner}#EXT#@{scoped.domain}"
        assert guest["userPrincipalName"] == guest_upn(address, scoped.domain)
        assert guest["mailNickname"] == f"{local}_{partner}#EXT#"
        assert guest["externalUserState"] in ("Accepted", "PendingAcceptance")
        assert guest["companyName"] not in (None, plain.user(guest["id"])["companyName"])
        assert guest["id"] not in managers  # nobody reports to a guest
        assert members_of[guest["id"]] >= 1  # a guest keeps its groups
        assert guest["employeeType"] is None
        assert COST_CENTER not in guest
    states = [g["externalUserState"] for g in guests]
    assert states.count("Accepted") > states.count("PendingAcceptance") > 0
    assert all(u.get("externalUserState") is None for u in scoped.users if u not in guests)


def test_one_member_has_an_underscore_in_its_upn(scoped: Organisation) -> None:
    members = [u for u in scoped.users if u["userType"] == "Member"]
    underscored = [u for u in members if "_" in u["userPrincipalName"]]
    assert len(underscored) == 1
    assert "#EXT#" not in underscored[0]["userPrincipalName"]
    assert underscored[0]["userPrincipalName"].endswith(f"@{scoped.domain}")
    upns = [u["userPrincipalName"].lower() for u in scoped.users]
    assert len(set(upns)) == len(upns)


def test_scoping_attributes_are_a_realistic_mix() -> None:
    org = generate_organisation(2000, seed=5, scope_attributes=True)
    assert not _guests(org)
    types = [u["employeeType"] for u in org.users]
    assert types.count("Employee") > 0.8 * len(types)
    assert 0 < types.count(None) < types.count("Consultant") < types.count("Contractor")
    for user in org.users:
        attrs = user["onPremisesExtensionAttributes"]
        assert tuple(attrs) == EXTENSION_ATTRIBUTES
        assert {k for k, v in attrs.items() if v is not None} <= {
            "extensionAttribute1",
            "extensionAttribute7",
        }
        if user["employeeType"] in ("Contractor", "Consultant"):
            assert user[IS_CONTRACTOR] is True
    filled = [u for u in org.users if u["onPremisesExtensionAttributes"]["extensionAttribute1"]]
    regions = {u["onPremisesExtensionAttributes"]["extensionAttribute7"] for u in org.users}
    assert 0.7 * len(org.users) < len(filled) < 0.9 * len(org.users)
    assert regions == {None, "EMEA-N", "EMEA-W", "AMER"}
    assert 0.5 * len(org.users) < sum(COST_CENTER in u for u in org.users) < 0.7 * len(org.users)
    assert any(u.get(IS_CONTRACTOR) is False for u in org.users)
    assert f"extension_{EXTENSION_APP_ID.replace('-', '')}_costCenter" == COST_CENTER


def test_a_guest_share_and_the_attributes_are_independent(scoped: Organisation) -> None:
    attributes_only = generate_organisation(300, seed=42, scope_attributes=True)
    guests = {u["id"] for u in _guests(scoped)}
    assert not _guests(attributes_only)
    by_id = {u["id"]: u for u in attributes_only.users}
    for user in scoped.users:
        if user["id"] not in guests:
            expected = by_id[user["id"]]["onPremisesExtensionAttributes"]
            assert user["onPremisesExtensionAttributes"] == expected
    with pytest.raises(ValueError, match="guest_share"):
        generate_organisation(10, guest_share=1.5)


# ---------------------------------------------------------------- users over HTTP


def test_a_guest_over_http(fake: FakeGraph, client: httpx.Client, scoped: Organisation) -> None:
    guest = _guests(scoped)[0]
    select = {"$select": "id,userType,mail,externalUserState,companyName,userPrincipalName"}
    # "#" must be sent as %23 in a path; the fake finds a user by UPN as Graph does
    quoted = guest["userPrincipalName"].replace("#", "%23")
    body = client.get(f"{fake.base_url}/users/{quoted}", params=select).json()
    assert body["id"] == guest["id"]
    assert body["userType"] == "Guest"
    assert body["mail"] == guest["mail"]
    assert body["externalUserState"] == guest["externalUserState"]
    query = {"$filter": "userType eq 'Guest'", "$select": "id", "$top": "999"}
    found = client.get(f"{fake.base_url}/users", params=query).json()["value"]
    assert {u["id"] for u in found} == {g["id"] for g in _guests(scoped)}


def test_scoping_attributes_are_read_with_select(
    fake: FakeGraph, client: httpx.Client, scoped: Organisation
) -> None:
    url = f"{fake.base_url}/users"
    params = {"$select": SCOPE_SELECT, "$top": "999"}
    body = client.get(url, params=params).json()
    assert body["@odata.context"].endswith(f"$metadata#users({SCOPE_SELECT})")
    by_id = {u["id"]: u for u in body["value"]}
    for user in scoped.users:
        item = by_id[user["id"]]
        assert item["onPremisesExtensionAttributes"] == user["onPremisesExtensionAttributes"]
        assert item["employeeType"] == user["employeeType"]
        # a directory extension without value is left out, as Graph does
        assert item.get(COST_CENTER) == user.get(COST_CENTER)
        assert (COST_CENTER in item) == (COST_CENTER in user)
    one = scoped.users[0]
    single = client.get(f"{url}/{one['id']}", params={"$select": SCOPE_SELECT}).json()
    assert single == {"@odata.context": single["@odata.context"], **by_id[one["id"]]}
    assert "onPremisesExtensionAttributes" not in client.get(url).json()["value"][0]
    query = {"$filter": f"{COST_CENTER} eq 'CC4110'", "$select": f"id,{COST_CENTER}"}
    matched = client.get(url, params=query).json()["value"]
    assert matched
    assert all(u[COST_CENTER] == "CC4110" for u in matched)


def test_unset_attributes_read_as_graph_shows_them(fake: FakeGraph, client: httpx.Client) -> None:
    uid = fake.add_user({"userPrincipalName": "new@contoso.example", "displayName": "New"})
    body = client.get(f"{fake.base_url}/users/{uid}", params={"$select": SCOPE_SELECT}).json()
    assert body["onPremisesExtensionAttributes"] == dict.fromkeys(EXTENSION_ATTRIBUTES)
    assert body["userType"] == "Member"
    assert body["employeeType"] is None
    assert COST_CENTER not in body
    assert IS_CONTRACTOR not in body


def test_unknown_extensions_are_refused_as_graph_refuses_them(
    fake: FakeGraph, client: httpx.Client, scoped: Organisation
) -> None:
    unknown = f"extension_{'0' * 32}_shoeSize"
    expected = f"Property '{unknown}' does not exist as a declared property or extension property."
    for params in ({"$select": f"id,{unknown}"}, {"$filter": f"{unknown} eq '42'"}):
        response = client.get(f"{fake.base_url}/users", params=params)
        assert _error(response, 400, "Request_UnsupportedQuery")["message"] == expected
    response = client.get(f"{fake.base_url}/users/delta", params={"$select": f"id,{unknown}"})
    _error(response, 400, "Request_UnsupportedQuery")
    uid = scoped.users[0]["id"]
    with pytest.raises(ValueError, match="does not exist as a declared property"):
        fake.update_user(uid, **{unknown: "42"})
    answer = httpx.patch(f"{fake.origin}/_fake/users/{uid}", json={unknown: "42"})
    assert answer.status_code == 400
    assert "does not exist" in answer.json()["error"]
    with pytest.raises(ValueError, match="extensionAttribute16"):
        fake.update_user(uid, onPremisesExtensionAttributes={"extensionAttribute16": "x"})
    with pytest.raises(ValueError, match="bool"):
        fake.update_user(uid, **{IS_CONTRACTOR: "yes"})


def test_scoping_attributes_change_in_the_next_delta_round(
    fake: FakeGraph, client: httpx.Client, scoped: Organisation
) -> None:
    items, link, _ = _delta_round(client, f"{fake.base_url}/users/delta", {"$select": SCOPE_SELECT})
    first = {i["id"]: i for i in items}
    user = next(u for u in scoped.users if COST_CENTER in u and u["userType"] == "Member")
    assert first[user["id"]][COST_CENTER] == user[COST_CENTER]
    assert (
        first[user["id"]]["onPremisesExtensionAttributes"] == user["onPremisesExtensionAttributes"]
    )
    other = next(u for u in scoped.users if u is not user and COST_CENTER not in u)
    assert COST_CENTER not in first[other["id"]]

    fake.update_user(user["id"], onPremisesExtensionAttributes={"extensionAttribute7": "APAC"})
    fake.update_user(user["id"], **{COST_CENTER: None, "employeeType": "Contractor"})
    fake.update_user(other["id"], **{COST_CENTER: "CC9999", IS_CONTRACTOR: True})
    fake.update_user(
        other["id"], onPremisesExtensionAttributes=other["onPremisesExtensionAttributes"]
    )
    items, link, _ = _delta_round(client, link)
    merged = {**user["onPremisesExtensionAttributes"], "extensionAttribute7": "APAC"}
    assert {i["id"]: i for i in items} == {
        user["id"]: {
            "id": user["id"],
            "onPremisesExtensionAttributes": merged,  # the whole complex value, merged
            COST_CENTER: None,  # a change to no value
            "employeeType": "Contractor",
        },
        other["id"]: {"id": other["id"], COST_CENTER: "CC9999", IS_CONTRACTOR: True},
    }
    assert _delta_round(client, link)[0] == []
