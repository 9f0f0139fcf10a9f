"""The fake tenant's data for scoping: guests, scoping attributes, service principals (over HTTP)."""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from syncd.fakes.generator import Organisation, generate_organisation
from syncd.fakes.graph import FakeGraph
from syncd.fakes.graph.apps import DEFAULT_ROLE
from syncd.fakes.scoping import (
    COST_CENTER,
    EXTENSION_APP_ID,
    EXTENSION_ATTRIBUTES,
    GUEST_SHARE,
    IS_CONTRACTOR,
    guest_upn,
)
from tests.test_fake_graph import TOKEN, _delta_round, _error, _first_line, _read_all, serve

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
    # $filter sees the value Graph shows, stored or not
    query = {"$filter": "userType eq 'Member' and employeeType eq null", "$top": "999"}
    found = client.get(f"{fake.base_url}/users", params=query).json()["value"]
    assert uid in {u["id"] for u in found}


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


# ---------------------------------------------------------------- service principals

APP_ID = "9b0d3a1e-7c44-4d2f-8e61-0f5a2b3c4d5e"
READ_APPS = {"User.Read.All", "GroupMember.Read.All", "Application.Read.All"}


@pytest.fixture
def apps(scoped: Organisation) -> Iterator[FakeGraph]:
    with serve(scoped, permissions=READ_APPS) as graph:
        yield graph


def test_a_service_principal_by_filter_id_and_app_id(apps: FakeGraph, client: httpx.Client) -> None:
    sp_id = apps.add_service_principal(APP_ID, "Learnster")
    other = apps.add_service_principal(str(uuid.uuid4()), "Other app")
    url = f"{apps.base_url}/servicePrincipals"
    query = {"$filter": f"appId eq '{APP_ID.upper()}'", "$select": "id,appId,displayName"}
    body = client.get(url, params=query).json()
    assert body["@odata.context"].endswith("$metadata#servicePrincipals(id,appId,displayName)")
    assert body["value"] == [{"id": sp_id, "appId": APP_ID, "displayName": "Learnster"}]
    assert {s["id"] for s in client.get(url).json()["value"]} == {sp_id, other}
    by_id = client.get(f"{url}/{sp_id}").json()
    by_app_id = client.get(f"{apps.base_url}/servicePrincipals(appId='{APP_ID}')").json()
    assert by_id == by_app_id
    assert by_id["servicePrincipalNames"] == [APP_ID]
    assert by_id["appRoleAssignmentRequired"] is True
    selected = client.get(f"{url}/{sp_id}", params={"$select": "appId"}).json()
    assert set(selected) == {"@odata.context", "appId"}
    missing = str(uuid.uuid4())
    _error(client.get(f"{url}/{missing}"), 404, "Request_ResourceNotFound")
    _error(
        client.get(f"{apps.base_url}/servicePrincipals(appId='{missing}')/appRoleAssignedTo"),
        404,
        "Request_ResourceNotFound",
    )
    _error(client.get(f"{url}/not-a-guid"), 400, "Request_BadRequest")
    _error(client.get(url, params={"$select": "id,shoeSize"}), 400, "BadRequest")
    with pytest.raises(ValueError, match="already exists"):
        apps.add_service_principal(APP_ID, "Again")


def test_assignments_have_the_properties_graph_returns(
    apps: FakeGraph, client: httpx.Client, scoped: Organisation
) -> None:
    sp_id = apps.add_service_principal(APP_ID, "Learnster")
    client_app = apps.add_service_principal(str(uuid.uuid4()), "Reporting client")
    user, group = scoped.users[0], scoped.groups[0]
    ids = [apps.assign(sp_id, p) for p in (user["id"], group["id"], client_app)]
    body = client.get(f"{apps.base_url}/servicePrincipals/{sp_id}/appRoleAssignedTo").json()
    assert body["@odata.context"].endswith(
        f"$metadata#servicePrincipals('{sp_id}')/appRoleAssignedTo"
    )
    assert [a["id"] for a in body["value"]] == ids
    expected = [
        (user["id"], "User", user["displayName"]),
        (group["id"], "Group", group["displayName"]),
        (client_app, "ServicePrincipal", "Reporting client"),
    ]
    for item, (principal, kind, name) in zip(body["value"], expected, strict=True):
        created = item.pop("createdDateTime")
        assert datetime.strptime(created[:26], "%Y-%m-%dT%H:%M:%S.%f")
        assert item == {
            "id": item["id"],
            "deletedDateTime": None,
            "appRoleId": DEFAULT_ROLE,
            "principalDisplayName": name,
            "principalId": principal,
            "principalType": kind,
            "resourceDisplayName": "Learnster",
            "resourceId": sp_id,
        }
        # Graph's id starts with the principal's id, as GUID bytes (little-endian), base64url
        raw = base64.urlsafe_b64decode(item["id"] + "=")
        assert uuid.UUID(bytes_le=raw[:16]) == uuid.UUID(principal)
    one = client.get(f"{apps.base_url}/servicePrincipals/{sp_id}/appRoleAssignedTo/{ids[1]}")
    assert one.json()["principalId"] == group["id"]
    with pytest.raises(ValueError, match="already exists"):
        apps.assign(sp_id, user["id"])
    with pytest.raises(ValueError, match="app role"):
        apps.assign(sp_id, user["id"], app_role_id=str(uuid.uuid4()))
    with pytest.raises(KeyError):
        apps.assign(sp_id, str(uuid.uuid4()))


def test_an_app_role_of_the_application_can_be_assigned(
    apps: FakeGraph, client: httpx.Client, scoped: Organisation
) -> None:
    role = {"id": str(uuid.uuid4()), "value": "Learner", "displayName": "Learner"}
    sp_id = apps.add_service_principal(APP_ID, "Learnster", app_roles=[role])
    user = scoped.users[1]["id"]
    apps.assign(sp_id, user)
    apps.assign(sp_id, user, app_role_id=role["id"])  # another role for the same principal
    sp = client.get(f"{apps.base_url}/servicePrincipals/{sp_id}", params={"$select": "appRoles"})
    assert sp.json()["appRoles"][0]["value"] == "Learner"
    assert sp.json()["appRoles"][0]["isEnabled"] is True
    assigned = apps.app_role_assigned_to(sp_id)
    assert [a["appRoleId"] for a in assigned] == [DEFAULT_ROLE, role["id"]]


def test_2500_assignments_come_in_pages_as_graph_pages_them(client: httpx.Client) -> None:
    org = generate_organisation(2500, seed=8)
    with serve(org, permissions=READ_APPS) as fake:
        sp_id = fake.add_service_principal(APP_ID, "Learnster")
        assigned = [fake.assign(sp_id, u["id"]) for u in org.users]
        url = f"{fake.base_url}/servicePrincipals(appId='{APP_ID}')/appRoleAssignedTo"
        first = client.get(url, params={"$top": "999", "$select": "id,principalId"}).json()
        assert "$skiptoken=" in first["@odata.nextLink"]
        assert "$top=999" in first["@odata.nextLink"]
        items, pages = _read_all(client, url, {"$top": "999", "$select": "id,principalId"})
        assert pages == 3
        assert len(first["value"]) == 999
        assert [a["id"] for a in items] == assigned
        assert {a["principalId"] for a in items} == {u["id"] for u in org.users}
        assert all(set(a) == {"id", "principalId"} for a in items)
        default, pages = _read_all(client, url)
        assert (len(default), pages) == (2500, 25)  # Graph's default page: 100
        counted = client.get(
            url, params={"$count": "true"}, headers={"ConsistencyLevel": "eventual"}
        )
        assert counted.json()["@odata.count"] == 2500
        _error(client.get(url, params={"$top": "1000"}), 400, "BadRequest")
        _error(client.get(url, params={"$select": "id,shoeSize"}), 400, "BadRequest")


def test_reading_applications_needs_a_permission(apps: FakeGraph, client: httpx.Client) -> None:
    sp_id = apps.add_service_principal(APP_ID, "Learnster")
    urls = [
        f"{apps.base_url}/servicePrincipals",
        f"{apps.base_url}/servicePrincipals/{sp_id}",
        f"{apps.base_url}/servicePrincipals(appId='{APP_ID}')",
        f"{apps.base_url}/servicePrincipals/{sp_id}/appRoleAssignedTo",
    ]
    apps.permissions = {"User.Read.All", "GroupMember.Read.All", "Group.Read.All"}
    for url in urls:
        error = _error(client.get(url), 403, "Authorization_RequestDenied")
        assert error["message"] == "Insufficient privileges to complete the operation."
    for permission in ("Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All"):
        apps.permissions = {permission}
        assert [client.get(url).status_code for url in urls] == [200] * 4


def test_deleted_principals_and_their_assignments(
    apps: FakeGraph, client: httpx.Client, scoped: Organisation
) -> None:
    sp_id = apps.add_service_principal(APP_ID, "Learnster")
    ann, bob, carl = (u["id"] for u in scoped.users[:3])
    group = scoped.groups[0]["id"]
    for principal in (ann, bob, carl, group):
        apps.assign(sp_id, principal)

    url = f"{apps.base_url}/servicePrincipals/{sp_id}/appRoleAssignedTo"

    def listed() -> list[str]:
        return [a["principalId"] for a in _read_all(client, url)[0]]

    apps.soft_delete_user(ann)  # in the recycle bin the assignment is kept, but not listed
    assert listed() == [bob, carl, group]
    apps.restore_user(ann)
    assert listed() == [ann, bob, carl, group]
    apps.hard_delete_user(bob)  # deleted for good: its assignments are gone
    apps.soft_delete_user(carl)
    apps.hard_delete_user(carl)
    apps.delete_group(group)  # security groups are deleted for good at once
    assert listed() == [ann]
    assert apps.app_role_assigned_to(sp_id) == _read_all(client, url)[0]
    apps.update_user(ann, displayName="Ann Renamed")
    assert apps.app_role_assigned_to(sp_id)[0]["principalDisplayName"] == "Ann Renamed"
    apps.unassign(sp_id, ann)  # by principal id
    assert listed() == []
    assignment = apps.assign(sp_id, ann)
    apps.unassign(sp_id, assignment)  # by assignment id
    with pytest.raises(KeyError):
        apps.unassign(sp_id, assignment)


def test_control_api_scripts_applications(apps: FakeGraph, scoped: Organisation) -> None:
    control = f"{apps.origin}/_fake"
    created = httpx.post(f"{control}/servicePrincipals", json={"appId": APP_ID, "displayName": "L"})
    assert created.status_code == 201
    sp_id = created.json()["id"]
    user = scoped.users[0]["id"]
    assigned = httpx.post(
        f"{control}/servicePrincipals/{sp_id}/appRoleAssignedTo", json={"principalId": user}
    )
    assert assigned.status_code == 201
    assert [a["id"] for a in apps.app_role_assigned_to(sp_id)] == [assigned.json()["id"]]
    again = httpx.post(
        f"{control}/servicePrincipals/{sp_id}/appRoleAssignedTo", json={"principalId": user}
    )
    assert again.status_code == 400
    path = f"{control}/servicePrincipals/{sp_id}/appRoleAssignedTo/{assigned.json()['id']}"
    assert httpx.delete(path).status_code == 204
    assert httpx.delete(path).status_code == 404
    assert apps.app_role_assigned_to(sp_id) == []
    groups = [g["id"] for g in scoped.groups[:2]]
    learnster = httpx.post(
        f"{control}/learnsterApp",
        json={"appId": str(uuid.uuid4()), "assignGroups": groups, "assignUsers": 4},
    )
    assert learnster.status_code == 201
    kinds = Counter(a["principalType"] for a in apps.app_role_assigned_to(learnster.json()["id"]))
    assert kinds == {"Group": 2, "User": 4}
    assert httpx.get(f"{control}/state").json()["servicePrincipals"] == 2


def test_the_learnster_app_picks_the_same_principals_for_the_same_tenant(
    scoped: Organisation,
) -> None:
    picked = []
    for _ in range(2):
        with serve(scoped) as fake:
            sp_id = fake.add_learnster_app(APP_ID, assign_groups=3, assign_users=5)
            picked.append([a["principalId"] for a in fake.app_role_assigned_to(sp_id)])
    assert picked[0] == picked[1]
    assert len(picked[0]) == 8


def test_command_line_creates_the_learnster_app_and_guests() -> None:
    command = [sys.executable, "-m", "syncd.fakes", "graph", "--users", "50", "--token", "T"]
    command += ["--guest-share", "0.1", "--scope-attributes", "--learnster-app", APP_ID]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = _first_line(process)
        headers = {"Authorization": "Bearer T"}
        assigned = httpx.get(
            f"{url}/servicePrincipals(appId='{APP_ID}')/appRoleAssignedTo", headers=headers
        ).json()["value"]
        assert Counter(a["principalType"] for a in assigned) == {"Group": 3, "User": 5}
        query = {"$filter": "userType eq 'Guest'", "$select": f"id,{COST_CENTER}"}
        guests = httpx.get(f"{url}/users", params=query, headers=headers).json()["value"]
        assert len(guests) == 5
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = stderr.splitlines()
    assert lines[0].startswith("servicePrincipal ")
    assert lines[0].endswith(f"appId {APP_ID}")
    assert [line.split()[2] for line in lines[1:]] == [a["principalId"] for a in assigned]
