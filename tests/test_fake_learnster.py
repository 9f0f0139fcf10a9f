"""The fake Learnster over real HTTP: SCIM behaviour, Learnster's rules and fault injection."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from syncd.fakes._http import Request
from syncd.fakes.learnster import ENTERPRISE_SCHEMA, FakeLearnster, ScimFault

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
TOKEN = "learnster-token"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLearnster]:
    with FakeLearnster() as running:
        yield running


@pytest.fixture
def fake(server: FakeLearnster) -> FakeLearnster:
    server.reset()  # one server per module: stopping one takes up to 0.5 s
    return server


@pytest.fixture
def client(fake: FakeLearnster) -> Iterator[httpx.Client]:
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": "application/scim+json",
        "Accept": "application/scim+json",
    }
    with httpx.Client(base_url=fake.base_url, headers=headers, timeout=5) as http:
        yield http


def create_user(client: httpx.Client, user_name: str, **attrs: Any) -> dict[str, Any]:
    response = client.post("/Users", json={"schemas": [USER], "userName": user_name, **attrs})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def create_group(client: httpx.Client, name: str, **attrs: Any) -> dict[str, Any]:
    response = client.post("/Groups", json={"schemas": [GROUP], "displayName": name, **attrs})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def patch(client: httpx.Client, path: str, *operations: dict[str, Any]) -> httpx.Response:
    return client.patch(path, json={"schemas": [PATCH_OP], "Operations": list(operations)})


def ok_patch(client: httpx.Client, path: str, *operations: dict[str, Any]) -> dict[str, Any]:
    response = patch(client, path, *operations)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def assert_scim_error(response: httpx.Response, status: int, scim_type: str | None) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/scim+json"
    body = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type
    return str(body["detail"])


def user_names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["userName"] for r in response.json()["Resources"]]


# ----------------------------------------------------------------------------- users


def test_create_and_get_user(fake: FakeLearnster, client: httpx.Client) -> None:
    response = client.post(
        "/Users",
        json={
            "schemas": [USER, ENTERPRISE_SCHEMA],
            "userName": "Ann.Andersson@contoso.se",
            "displayName": "Ann Andersson",
            "name": {"givenName": "Ann", "familyName": "Andersson", "formatted": "Ann Andersson"},
            "emails": [{"type": "work", "value": "ann@contoso.se"}],
            "externalId": "ann",
            ENTERPRISE_SCHEMA: {"organization": "Contoso"},
        },
    )
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/scim+json"
    user = response.json()
    assert response.headers["location"] == user["meta"]["location"]
    assert response.headers["etag"] == user["meta"]["version"]
    assert user["schemas"] == [USER, ENTERPRISE_SCHEMA]
    assert user["active"] is True  # defaults to true
    assert user["externalId"] == "ann"
    assert user[ENTERPRISE_SCHEMA] == {"organization": "Contoso"}
    meta = user["meta"]
    assert meta["resourceType"] == "User"
    assert meta["location"] == f"{fake.base_url}/Users/{user['id']}"
    assert meta["created"] == meta["lastModified"]
    assert fake.users[user["id"]] == user
    fetched = client.get(f"/Users/{user['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == user


def test_user_name_is_required(client: httpx.Client) -> None:
    response = client.post("/Users", json={"schemas": [USER], "displayName": "No Name"})
    assert "userName" in assert_scim_error(response, 400, "invalidValue")


def test_schemas_are_required_on_create(client: httpx.Client) -> None:
    response = client.post("/Users", json={"userName": "a@contoso.se"})
    assert_scim_error(response, 400, "invalidSyntax")


def test_read_only_and_unknown_attributes_are_ignored(client: httpx.Client) -> None:
    user = create_user(
        client, "a@contoso.se", id="mine", meta={"version": "x"}, shoeSize=42, password="secret"
    )
    assert user["id"] != "mine"
    assert "shoeSize" not in user
    assert "password" not in user


def test_invalid_json_is_a_scim_error(client: httpx.Client) -> None:
    response = client.post("/Users", content=b"{not json")
    assert_scim_error(response, 400, "invalidSyntax")


def test_wrong_attribute_type_is_invalid_value(client: httpx.Client) -> None:
    response = client.post("/Users", json={"schemas": [USER], "userName": "a@b.se", "active": 3})
    assert "active" in assert_scim_error(response, 400, "invalidValue")


@pytest.mark.parametrize("variant", ["DUP@contoso.se", "dup@contoso.se", "Dup@Contoso.SE"])
def test_duplicate_user_name_in_any_case_is_409_on_post(client: httpx.Client, variant: str) -> None:
    create_user(client, "Dup@contoso.se")
    detail = assert_scim_error(
        client.post("/Users", json={"schemas": [USER], "userName": variant}), 409, "uniqueness"
    )
    assert variant in detail


def test_duplicate_user_name_is_409_on_put_and_patch(client: httpx.Client) -> None:
    create_user(client, "taken@contoso.se")
    other = create_user(client, "other@contoso.se")
    put = client.put(
        f"/Users/{other['id']}", json={"schemas": [USER], "userName": "TAKEN@contoso.se"}
    )
    assert_scim_error(put, 409, "uniqueness")
    patched = patch(
        client, f"/Users/{other['id']}", {"op": "replace", "path": "userName", "value": "Taken@X"}
    )
    assert patched.status_code == 200  # not taken: another name
    clash = patch(
        client,
        f"/Users/{other['id']}",
        {"op": "replace", "path": "userName", "value": "taken@CONTOSO.se"},
    )
    assert_scim_error(clash, 409, "uniqueness")
    # Changing only the case of one's own userName is fine.
    ok_patch(
        client, f"/Users/{other['id']}", {"op": "replace", "path": "userName", "value": "TAKEN@x"}
    )


def test_put_replaces_the_resource(client: httpx.Client) -> None:
    user = create_user(client, "p@contoso.se", title="Engineer", displayName="P")
    response = client.put(
        f"/Users/{user['id']}",
        json={"schemas": [USER], "userName": "p@contoso.se", "displayName": "Paula"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["displayName"] == "Paula"
    assert "title" not in body
    assert body["meta"]["created"] == user["meta"]["created"]
    assert body["meta"]["version"] != user["meta"]["version"]


def test_unknown_ids_are_404(client: httpx.Client) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        for collection in ("Users", "Groups"):
            response = client.request(
                method,
                f"/{collection}/no-such-id",
                json={"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "title"}]},
            )
            assert_scim_error(response, 404, None)


def test_unknown_endpoint_and_wrong_method(client: httpx.Client) -> None:
    assert_scim_error(client.get("/Nothing"), 404, None)
    response = client.delete("/Users")
    assert_scim_error(response, 405, None)
    assert response.headers["allow"] == "GET, POST"


def test_delete_user(fake: FakeLearnster, client: httpx.Client) -> None:
    user = create_user(client, "gone@contoso.se")
    response = client.delete(f"/Users/{user['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert_scim_error(client.get(f"/Users/{user['id']}"), 404, None)
    assert fake.user_by_username("gone@contoso.se") is None
    create_user(client, "GONE@contoso.se")  # the userName is free again


# ----------------------------------------------------------------------------- filters, paging


def test_filter_user_name_eq_is_case_insensitive(client: httpx.Client) -> None:
    create_user(client, "Erik.Svensson@Contoso.se")
    create_user(client, "someone@contoso.se")
    response = client.get("/Users", params={"filter": 'userName eq "erik.svensson@contoso.SE"'})
    assert user_names(response) == ["Erik.Svensson@Contoso.se"]
    assert response.json()["totalResults"] == 1
    # Attribute names and operators are case-insensitive too.
    response = client.get("/Users", params={"filter": 'USERNAME EQ "ERIK.SVENSSON@CONTOSO.SE"'})
    assert user_names(response) == ["Erik.Svensson@Contoso.se"]


def test_filter_miss_is_an_empty_list(client: httpx.Client) -> None:
    # What `syncd check` sends.
    response = client.get("/Users", params={"filter": 'userName eq "5f1f0b4e-no-such-user"'})
    assert response.status_code == 200
    assert response.json() == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "itemsPerPage": 0,
        "startIndex": 1,
        "Resources": [],
    }


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('userName eq "a@contoso.se" and active eq true', ["a@contoso.se"]),
        ('userName eq "a@contoso.se" and active eq false', []),
        ('title eq "Boss" and active eq false', ["c@contoso.se"]),
        ('userName eq "a@contoso.se" or userName eq "b@other.se"', ["a@contoso.se", "b@other.se"]),
        ('userName ew "@contoso.se"', ["a@contoso.se", "c@contoso.se"]),
        ('userName sw "B@"', ["b@other.se"]),
        ('displayName co "NN"', ["a@contoso.se"]),
        ("title pr", ["b@other.se", "c@contoso.se"]),
        ('title ne "Boss"', ["a@contoso.se", "b@other.se"]),
        ('not (userName ew "contoso.se")', ["b@other.se"]),
        ('(title eq "Boss" or title eq "Dev") and not (active eq false)', ["b@other.se"]),
        ('emails[type eq "work" and value co "@b.se"]', ["b@other.se"]),
        ('emails.value eq "a@b.se"', ["b@other.se"]),
        ('emails co "b.SE"', ["b@other.se"]),
        ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "c@contoso.se"', ["c@contoso.se"]),
        (f'{ENTERPRISE_SCHEMA}:organization eq "Contoso"', ["c@contoso.se"]),
        ('meta.resourceType eq "User" and userName sw "c"', ["c@contoso.se"]),
        ('meta.created gt "2000-01-01T00:00:00Z"', ["a@contoso.se", "b@other.se", "c@contoso.se"]),
        ('externalId eq "C"', []),  # externalId is case-exact
        ('externalId eq "c"', ["c@contoso.se"]),
        ('displayName eq "O\\"Brien"', ["b@other.se"]),
    ],
)
def test_filter_operators(client: httpx.Client, expression: str, expected: list[str]) -> None:
    create_user(client, "a@contoso.se", displayName="Anna")
    create_user(
        client,
        "b@other.se",
        displayName='O"Brien',
        title="Dev",
        emails=[{"type": "work", "value": "a@b.se"}],
    )
    create_user(
        client,
        "c@contoso.se",
        title="Boss",
        active=False,
        externalId="c",
        **{ENTERPRISE_SCHEMA: {"organization": "Contoso"}},
    )
    assert user_names(client.get("/Users", params={"filter": expression})) == expected


@pytest.mark.parametrize(
    "expression",
    [
        'userName eq "unterminated',
        "userName eq",
        'userName xx "a"',
        'shoeSize eq "42"',
        'userName eq "a" and',
        "active gt true",
        '(userName eq "a"',
        'name.nothing eq "x"',
    ],
)
def test_invalid_filters_are_400_invalid_filter(client: httpx.Client, expression: str) -> None:
    assert_scim_error(client.get("/Users", params={"filter": expression}), 400, "invalidFilter")


def test_paging_is_stable_by_creation(fake: FakeLearnster, client: httpx.Client) -> None:
    names = [f"user{i}@contoso.se" for i in range(7)]
    for name in names:
        create_user(client, name)
    page = client.get("/Users", params={"startIndex": 3, "count": 2}).json()
    assert page["totalResults"] == 7
    assert page["itemsPerPage"] == 2
    assert page["startIndex"] == 3
    assert [r["userName"] for r in page["Resources"]] == names[2:4]
    collected: list[str] = []
    start = 1
    while True:
        page = client.get("/Users", params={"startIndex": start, "count": 3}).json()
        collected += [r["userName"] for r in page["Resources"]]
        start += page["itemsPerPage"]
        if start > page["totalResults"]:
            break
    assert collected == names
    # An update keeps a resource in its place.
    user = fake.user_by_username(names[0])
    assert user is not None
    ok_patch(client, f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "X"})
    assert user_names(client.get("/Users"))[0] == names[0]
    # count=0 only counts; startIndex < 1 is read as 1; past the end is empty.
    assert client.get("/Users", params={"count": 0}).json()["Resources"] == []
    assert client.get("/Users", params={"count": 0}).json()["totalResults"] == 7
    assert client.get("/Users", params={"startIndex": 0, "count": 1}).json()["startIndex"] == 1
    assert client.get("/Users", params={"startIndex": 50}).json()["Resources"] == []
    assert_scim_error(client.get("/Users", params={"count": "many"}), 400, "invalidValue")


def test_count_defaults_to_100_and_is_capped() -> None:
    with FakeLearnster(page_size_max=5) as fake:
        for i in range(7):
            fake.add_user({"userName": f"u{i}@contoso.se"})
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=fake.base_url, headers=headers) as http:
            assert http.get("/Users", params={"count": 1000}).json()["itemsPerPage"] == 5
            spc = http.get("/ServiceProviderConfig").json()
            assert spc["filter"] == {"supported": True, "maxResults": 5}
    with FakeLearnster() as fake:
        for i in range(120):
            fake.add_user({"userName": f"u{i}@contoso.se"})
        with httpx.Client(base_url=fake.base_url, headers=headers) as http:
            page = http.get("/Users").json()
            assert (page["totalResults"], page["itemsPerPage"]) == (120, 100)


def test_search_endpoint(client: httpx.Client) -> None:
    create_user(client, "a@contoso.se", title="Dev")
    create_user(client, "b@contoso.se")
    create_group(client, "Dev team")
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": 'title eq "dev"',
        "attributes": ["userName"],
    }
    found = client.post("/Users/.search", json=body).json()
    uid = found["Resources"][0]["id"]
    assert found["Resources"] == [{"schemas": [USER], "id": uid, "userName": "a@contoso.se"}]
    everything = client.post("/.search", json={**body, "filter": None, "attributes": []}).json()
    assert everything["totalResults"] == 3


def test_attributes_and_excluded_attributes(client: httpx.Client) -> None:
    user = create_user(
        client,
        "a@contoso.se",
        displayName="A",
        name={"givenName": "A", "familyName": "B"},
        emails=[{"type": "work", "value": "a@b.se", "primary": True}],
        **{ENTERPRISE_SCHEMA: {"organization": "Contoso", "department": "R&D"}},
    )
    only = client.get(
        f"/Users/{user['id']}",
        params={
            "attributes": f"displayName,name.givenName,emails.value,{ENTERPRISE_SCHEMA}:department"
        },
    ).json()
    assert only == {
        "schemas": [USER, ENTERPRISE_SCHEMA],
        "id": user["id"],
        "displayName": "A",
        "name": {"givenName": "A"},
        "emails": [{"value": "a@b.se"}],
        ENTERPRISE_SCHEMA: {"department": "R&D"},
    }
    without = client.get(
        "/Users", params={"excludedAttributes": f"meta,name.familyName,{ENTERPRISE_SCHEMA}"}
    ).json()["Resources"][0]
    assert "meta" not in without
    assert without["name"] == {"givenName": "A"}
    assert ENTERPRISE_SCHEMA not in without
    assert without["id"] == user["id"]  # "returned: always"


# ----------------------------------------------------------------------------- Learnster's rules


@pytest.mark.parametrize("number", ["08-123 456 78", "46701234567", "+0701234567", "+46 70 123"])
def test_phone_numbers_must_be_e164(fake: FakeLearnster, client: httpx.Client, number: str) -> None:
    response = client.post(
        "/Users",
        json={
            "schemas": [USER],
            "userName": "phone@contoso.se",
            "phoneNumbers": [{"type": "work", "value": number}],
        },
    )
    detail = assert_scim_error(response, 400, "invalidValue")
    assert f'"{number}"' in detail
    assert fake.users == {}


def test_phone_rule_applies_to_patch(fake: FakeLearnster, client: httpx.Client) -> None:
    user = create_user(
        client, "p@contoso.se", phoneNumbers=[{"type": "work", "value": "+4681234567"}]
    )
    response = patch(
        client,
        f"/Users/{user['id']}",
        {"op": "replace", "path": 'phoneNumbers[type eq "work"].value', "value": "070-123 45 67"},
    )
    assert "070-123 45 67" in assert_scim_error(response, 400, "invalidValue")
    assert fake.users[user["id"]] == user  # a failed PATCH changes nothing


def test_only_the_first_phone_number_is_kept(client: httpx.Client) -> None:
    user = create_user(
        client,
        "p@contoso.se",
        phoneNumbers=[
            {"type": "work", "value": "+4681234567"},
            {"type": "mobile", "value": "+46701234567"},
        ],
    )
    assert user["phoneNumbers"] == [{"type": "work", "value": "+4681234567"}]
    # Adding a mobile number where a work number exists: Learnster keeps the work number.
    patched = ok_patch(
        client,
        f"/Users/{user['id']}",
        {"op": "add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+46709999999"},
    )
    assert patched["phoneNumbers"] == [{"type": "work", "value": "+4681234567"}]


def test_enforce_e164_can_be_lifted(fake: FakeLearnster, client: httpx.Client) -> None:
    fake.enforce_e164 = False
    user = create_user(client, "p@contoso.se", phoneNumbers=[{"type": "work", "value": "0812345"}])
    assert user["phoneNumbers"][0]["value"] == "0812345"


def test_manager_must_be_an_existing_user(fake: FakeLearnster, client: httpx.Client) -> None:
    boss = create_user(client, "boss@contoso.se", displayName="The Boss")
    response = client.post(
        "/Users",
        json={
            "schemas": [USER, ENTERPRISE_SCHEMA],
            "userName": "r@contoso.se",
            ENTERPRISE_SCHEMA: {"manager": {"value": "no-such-id"}},
        },
    )
    assert "no-such-id" in assert_scim_error(response, 400, "invalidValue")
    report = create_user(
        client,
        "r@contoso.se",
        schemas=[USER, ENTERPRISE_SCHEMA],
        **{ENTERPRISE_SCHEMA: {"manager": {"value": boss["id"]}}},
    )
    assert report[ENTERPRISE_SCHEMA]["manager"] == {
        "value": boss["id"],
        "$ref": f"{fake.base_url}/Users/{boss['id']}",
        "displayName": "The Boss",
    }


def test_deleting_a_user_clears_memberships_and_manager_references(
    fake: FakeLearnster, client: httpx.Client
) -> None:
    boss = create_user(client, "boss@contoso.se")
    report = create_user(
        client,
        "r@contoso.se",
        schemas=[USER, ENTERPRISE_SCHEMA],
        **{ENTERPRISE_SCHEMA: {"manager": {"value": boss["id"]}, "organization": "C"}},
    )
    other = create_user(
        client,
        "o@contoso.se",
        schemas=[USER, ENTERPRISE_SCHEMA],
        **{ENTERPRISE_SCHEMA: {"manager": {"value": boss["id"]}}},
    )
    group = create_group(client, "Team", members=[{"value": boss["id"]}, {"value": report["id"]}])
    solo = create_group(client, "Solo", members=[{"value": boss["id"]}])
    assert client.delete(f"/Users/{boss['id']}").status_code == 204
    assert client.get(f"/Groups/{group['id']}").json()["members"] == [{"value": report["id"]}]
    assert "members" not in client.get(f"/Groups/{solo['id']}").json()
    after = client.get(f"/Users/{report['id']}").json()
    assert after[ENTERPRISE_SCHEMA] == {"organization": "C"}
    assert after["meta"]["version"] != report["meta"]["version"]
    other_after = client.get(f"/Users/{other['id']}").json()
    assert ENTERPRISE_SCHEMA not in other_after
    assert other_after["schemas"] == [USER]
    assert fake.users[other["id"]] == other_after


# ----------------------------------------------------------------------------- PATCH


def test_patch_design_shapes(fake: FakeLearnster, client: httpx.Client) -> None:
    """The exact requests syncd sends (the SCIM request shapes of the contract)."""
    boss = create_user(client, "boss@contoso.se", displayName="Boss")
    user = create_user(client, "u@contoso.se", emails=[{"type": "work", "value": "old@b.se"}])
    path = f"/Users/{user['id']}"
    body = ok_patch(
        client,
        path,
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "a@b.se"},
        {"op": "add", "path": "phoneNumbers", "value": [{"type": "work", "value": "+4681234567"}]},
        {
            "op": "replace",
            "path": f"{ENTERPRISE_SCHEMA}:manager",
            "value": {"value": boss["id"]},
        },
        {"op": "replace", "path": "active", "value": False},
    )
    assert body["emails"] == [{"type": "work", "value": "a@b.se"}]
    assert body["phoneNumbers"] == [{"type": "work", "value": "+4681234567"}]
    assert body[ENTERPRISE_SCHEMA]["manager"]["value"] == boss["id"]
    assert body["schemas"] == [USER, ENTERPRISE_SCHEMA]
    assert body["active"] is False
    body = ok_patch(
        client,
        path,
        {"op": "remove", "path": f"{ENTERPRISE_SCHEMA}:manager"},
        {"op": "replace", "path": "active", "value": True},
    )
    assert ENTERPRISE_SCHEMA not in body
    assert body["schemas"] == [USER]
    assert body["active"] is True
    assert fake.users[user["id"]] == body


def test_patch_entra_quirks(client: httpx.Client) -> None:
    user = create_user(client, "u@contoso.se")
    body = ok_patch(
        client,
        f"/Users/{user['id']}",
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Add", "path": "title", "value": "Dev"},
    )
    assert body["active"] is False
    assert body["title"] == "Dev"
    body = ok_patch(
        client, f"/Users/{user['id']}", {"op": "REPLACE", "path": "active", "value": "True"}
    )
    assert body["active"] is True


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ({"op": "replace", "path": "displayName", "value": "New"}, {"displayName": "New"}),
        ({"op": "replace", "path": "userName", "value": "New@x.se"}, {"userName": "New@x.se"}),
        ({"op": "add", "path": "title", "value": "CTO"}, {"title": "CTO"}),
        ({"op": "replace", "path": "externalId", "value": "ext"}, {"externalId": "ext"}),
        ({"op": "remove", "path": "title"}, {"title": None}),
        (
            {"op": "replace", "path": "name.givenName", "value": "Eva"},
            {"name": {"givenName": "Eva", "familyName": "Old", "formatted": "Old Name"}},
        ),
        (
            {"op": "replace", "path": "name.familyName", "value": "Ek"},
            {"name": {"givenName": "Old", "familyName": "Ek", "formatted": "Old Name"}},
        ),
        (
            {"op": "add", "path": "name.formatted", "value": "Eva Ek"},
            {"name": {"givenName": "Old", "familyName": "Old", "formatted": "Eva Ek"}},
        ),
        (
            {"op": "replace", "path": "name", "value": {"givenName": "Eva"}},
            {"name": {"givenName": "Eva", "familyName": "Old", "formatted": "Old Name"}},
        ),
        ({"op": "remove", "path": "name"}, {"name": None}),
        (
            {"op": "replace", "path": 'emails[type eq "work"].value', "value": "n@b.se"},
            {"emails": [{"type": "work", "value": "n@b.se"}]},
        ),
        (
            {"op": "add", "path": 'addresses[type eq "work"].locality', "value": "Lund"},
            {"addresses": [{"type": "work", "locality": "Lund", "country": "SE"}]},
        ),
        (
            {"op": "replace", "path": 'addresses[type eq "home"].locality', "value": "Lund"},
            {
                "addresses": [
                    {"type": "work", "locality": "Malmö", "country": "SE"},
                    {"type": "home", "locality": "Lund"},
                ]
            },
        ),
        (
            {"op": "remove", "path": 'addresses[type eq "work"].country'},
            {"addresses": [{"type": "work", "locality": "Malmö"}]},
        ),
        (
            {"op": "remove", "path": 'phoneNumbers[type eq "work"]'},
            {"phoneNumbers": None},
        ),
        (
            {"op": "remove", "path": 'phoneNumbers[type eq "mobile"]'},
            {"phoneNumbers": [{"type": "work", "value": "+4681234567"}]},
        ),
        (
            {"op": "add", "path": "phoneNumbers", "value": [{"type": "work", "value": "+4690000"}]},
            {"phoneNumbers": [{"type": "work", "value": "+4690000"}]},
        ),
        (
            {"op": "add", "path": "emails", "value": [{"type": "home", "value": "h@b.se"}]},
            {"emails": [{"type": "work", "value": "w@b.se"}, {"type": "home", "value": "h@b.se"}]},
        ),
        (
            {"op": "replace", "path": "emails", "value": [{"type": "home", "value": "h@b.se"}]},
            {"emails": [{"type": "home", "value": "h@b.se"}]},
        ),
        (
            {"op": "replace", "path": f"{ENTERPRISE_SCHEMA}:organization", "value": "Fabrikam"},
            {ENTERPRISE_SCHEMA: {"organization": "Fabrikam"}},
        ),
        (
            {"op": "add", "path": f"{ENTERPRISE_SCHEMA}:department", "value": "R&D"},
            {ENTERPRISE_SCHEMA: {"organization": "Contoso", "department": "R&D"}},
        ),
        (
            {"op": "remove", "path": f"{ENTERPRISE_SCHEMA}:organization"},
            {ENTERPRISE_SCHEMA: None},
        ),
        (
            {"op": "replace", "path": f"{ENTERPRISE_SCHEMA}", "value": {"costCenter": "42"}},
            {ENTERPRISE_SCHEMA: {"organization": "Contoso", "costCenter": "42"}},
        ),
        (
            {
                "op": "replace",
                "value": {
                    "displayName": "Nopath",
                    "name.givenName": "Eva",
                    "active": "False",
                    f"{ENTERPRISE_SCHEMA}:organization": "Fabrikam",
                },
            },
            {
                "displayName": "Nopath",
                "active": False,
                "name": {"givenName": "Eva", "familyName": "Old", "formatted": "Old Name"},
                ENTERPRISE_SCHEMA: {"organization": "Fabrikam"},
            },
        ),
        (
            {"op": "add", "value": {ENTERPRISE_SCHEMA: {"division": "North"}}},
            {ENTERPRISE_SCHEMA: {"organization": "Contoso", "division": "North"}},
        ),
    ],
)
def test_patch_path_forms(
    client: httpx.Client, operation: dict[str, Any], expected: dict[str, Any]
) -> None:
    user = create_user(
        client,
        "u@contoso.se",
        schemas=[USER, ENTERPRISE_SCHEMA],
        displayName="Old",
        title="Dev",
        name={"givenName": "Old", "familyName": "Old", "formatted": "Old Name"},
        emails=[{"type": "work", "value": "w@b.se"}],
        phoneNumbers=[{"type": "work", "value": "+4681234567"}],
        addresses=[{"type": "work", "locality": "Malmö", "country": "SE"}],
        **{ENTERPRISE_SCHEMA: {"organization": "Contoso"}},
    )
    body = ok_patch(client, f"/Users/{user['id']}", operation)
    for key, value in expected.items():
        if value is None:
            assert key not in body, body
        else:
            assert body[key] == value, body
    assert client.get(f"/Users/{user['id']}").json() == body


def test_filtered_path_creates_the_element_when_none_matches(client: httpx.Client) -> None:
    user = create_user(client, "u@contoso.se")
    body = ok_patch(
        client,
        f"/Users/{user['id']}",
        {"op": "add", "path": 'emails[type eq "work"].value', "value": "w@b.se"},
        {"op": "add", "path": 'addresses[type eq "work"].locality', "value": "Lund"},
        {"op": "replace", "path": 'addresses[type eq "work"].postalCode', "value": "22100"},
        {"op": "add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+46701234567"},
    )
    assert body["emails"] == [{"type": "work", "value": "w@b.se"}]
    assert body["addresses"] == [{"type": "work", "locality": "Lund", "postalCode": "22100"}]
    assert body["phoneNumbers"] == [{"type": "mobile", "value": "+46701234567"}]


def test_patch_primary_is_unique(client: httpx.Client) -> None:
    user = create_user(
        client, "u@contoso.se", emails=[{"type": "work", "value": "w@b.se", "primary": True}]
    )
    body = ok_patch(
        client,
        f"/Users/{user['id']}",
        {
            "op": "add",
            "path": "emails",
            "value": [{"type": "home", "value": "h@b.se", "primary": True}],
        },
    )
    assert body["emails"] == [
        {"type": "work", "value": "w@b.se", "primary": False},
        {"type": "home", "value": "h@b.se", "primary": True},
    ]


def ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


@pytest.mark.parametrize(
    ("body", "scim_type"),
    [
        ({"Operations": [{"op": "add", "path": "title", "value": "x"}]}, "invalidSyntax"),
        (ops(), "invalidSyntax"),
        (ops({"op": "move", "path": "title"}), "invalidSyntax"),
        (ops({"op": "remove"}), "noTarget"),
        (ops({"op": "add", "value": "x"}), "invalidSyntax"),
        (ops({"op": "add", "path": "shoe", "value": 1}), "invalidPath"),
        (ops({"op": "add", "path": "emails[", "value": 1}), "invalidPath"),
        (ops({"op": "add", "path": 'title[type eq "x"]', "value": 1}), "invalidPath"),
        (ops({"op": "replace", "path": "id", "value": "x"}), "mutability"),
        (ops({"op": "replace", "path": "meta.created", "value": "x"}), "mutability"),
        (ops({"op": "replace", "path": "active", "value": "maybe"}), "invalidValue"),
        (ops({"op": "remove", "path": "userName"}), "invalidValue"),
        (ops({"op": "replace", "path": 'emails[value sw "x"].type', "value": "w"}), "noTarget"),
    ],
)
def test_patch_errors(
    fake: FakeLearnster, client: httpx.Client, body: dict[str, Any], scim_type: str
) -> None:
    user = create_user(client, "u@contoso.se", title="Dev")
    assert_scim_error(client.patch(f"/Users/{user['id']}", json=body), 400, scim_type)
    assert fake.users[user["id"]] == user


def test_patch_is_atomic(fake: FakeLearnster, client: httpx.Client) -> None:
    user = create_user(client, "u@contoso.se", title="Dev")
    response = patch(
        client,
        f"/Users/{user['id']}",
        {"op": "replace", "path": "title", "value": "CTO"},
        {"op": "replace", "path": f"{ENTERPRISE_SCHEMA}:manager", "value": {"value": "nobody"}},
    )
    assert_scim_error(response, 400, "invalidValue")
    assert fake.users[user["id"]]["title"] == "Dev"


def test_patch_without_change_keeps_the_version(client: httpx.Client) -> None:
    user = create_user(client, "u@contoso.se", title="Dev")
    body = ok_patch(
        client, f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Dev"}
    )
    assert body["meta"]["version"] == user["meta"]["version"]


def test_patch_can_answer_204(fake: FakeLearnster, client: httpx.Client) -> None:
    fake.patch_returns_204 = True
    user = create_user(client, "u@contoso.se")
    response = patch(
        client, f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "X"}
    )
    assert response.status_code == 204
    assert response.content == b""
    assert fake.users[user["id"]]["title"] == "X"


def test_etags(client: httpx.Client) -> None:
    user = create_user(client, "u@contoso.se")
    version = user["meta"]["version"]
    assert client.get(f"/Users/{user['id']}", headers={"If-None-Match": version}).status_code == 304
    stale = patch(client, f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "A"})
    assert stale.status_code == 200
    response = client.patch(
        f"/Users/{user['id']}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "title", "value": "B"}],
        },
        headers={"If-Match": version},
    )
    assert_scim_error(response, 412, None)


# ----------------------------------------------------------------------------- groups (tags)


def test_group_tag_names_get_numbered_suffixes(fake: FakeLearnster, client: httpx.Client) -> None:
    first = create_group(client, "Sales", externalId="g1")
    second = create_group(client, "Sales", externalId="g2")
    third = create_group(client, "sales", externalId="g3")
    assert [first["displayName"], second["displayName"], third["displayName"]] == [
        "Sales",
        "Sales (2)",
        "sales (3)",
    ]
    # Renaming onto a taken name gets a suffix too; one's own name is not a clash.
    other = create_group(client, "Support")
    renamed = ok_patch(
        client, f"/Groups/{other['id']}", {"op": "replace", "path": "displayName", "value": "Sales"}
    )
    assert renamed["displayName"] == "Sales (4)"
    same = ok_patch(
        client, f"/Groups/{first['id']}", {"op": "replace", "path": "displayName", "value": "Sales"}
    )
    assert same["displayName"] == "Sales"
    put = client.put(
        f"/Groups/{second['id']}",
        json={"schemas": [GROUP], "displayName": "Sales", "externalId": "g2"},
    )
    assert put.json()["displayName"] == "Sales (2)"
    # Freed names are reused.
    assert client.delete(f"/Groups/{first['id']}").status_code == 204
    assert create_group(client, "Sales")["displayName"] == "Sales"
    assert fake.group_by_external_id("g3") == third
    response = client.get("/Groups", params={"filter": 'externalId eq "g2"'}).json()
    assert [g["id"] for g in response["Resources"]] == [second["id"]]
    response = client.get("/Groups", params={"filter": 'displayName eq "SALES (3)"'}).json()
    assert [g["id"] for g in response["Resources"]] == [third["id"]]


def test_group_members(fake: FakeLearnster, client: httpx.Client) -> None:
    users = [create_user(client, f"m{i}@contoso.se")["id"] for i in range(4)]
    group = create_group(client, "Team", externalId="graph-id", members=[{"value": users[0]}])
    path = f"/Groups/{group['id']}"
    body = ok_patch(
        client,
        path,
        {"op": "add", "path": "members", "value": [{"value": users[1]}, {"value": users[2]}]},
    )
    assert [m["value"] for m in body["members"]] == users[:3]
    # Adding again is idempotent.
    body = ok_patch(
        client,
        path,
        {"op": "Add", "path": "members", "value": [{"value": users[1]}, {"value": users[3]}]},
    )
    assert [m["value"] for m in body["members"]] == users
    body = ok_patch(client, path, {"op": "remove", "path": f'members[value eq "{users[1]}"]'})
    assert [m["value"] for m in body["members"]] == [users[0], users[2], users[3]]
    # Removing one that is not a member succeeds (idempotent), as does Entra's list form.
    body = ok_patch(client, path, {"op": "remove", "path": f'members[value eq "{users[1]}"]'})
    body = ok_patch(
        client, path, {"op": "Remove", "path": "members", "value": [{"value": users[0]}]}
    )
    assert [m["value"] for m in body["members"]] == [users[2], users[3]]
    body = ok_patch(client, path, {"op": "remove", "path": "members"})
    assert "members" not in body
    assert body["externalId"] == "graph-id"
    assert fake.groups[group["id"]] == body


def test_group_members_must_exist(fake: FakeLearnster, client: httpx.Client) -> None:
    user = create_user(client, "m@contoso.se")
    other_group = create_group(client, "Nested")
    response = client.post(
        "/Groups", json={"schemas": [GROUP], "displayName": "X", "members": [{"value": "ghost"}]}
    )
    assert "ghost" in assert_scim_error(response, 400, "invalidValue")
    group = create_group(client, "Team", members=[{"value": user["id"]}])
    response = patch(
        client,
        f"/Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": other_group["id"]}]},
    )
    assert other_group["id"] in assert_scim_error(response, 400, "invalidValue")
    assert fake.groups[group["id"]] == group
    assert_scim_error(client.post("/Groups", json={"schemas": [GROUP]}), 400, "invalidValue")


# ----------------------------------------------------------------------------- auth, discovery


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
)
def test_bearer_token_is_required(fake: FakeLearnster, headers: dict[str, str]) -> None:
    response = httpx.get(f"{fake.base_url}/Users", headers=headers)
    assert_scim_error(response, 401, None)
    assert response.headers["www-authenticate"] == "Bearer"
    response = httpx.get(f"{fake.base_url}/ServiceProviderConfig", headers=headers)
    assert response.status_code == 401


def test_discovery_endpoints(fake: FakeLearnster, client: httpx.Client) -> None:
    spc = client.get("/ServiceProviderConfig").json()
    assert spc["patch"] == {"supported": True}
    assert spc["bulk"]["supported"] is False
    assert spc["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    types = client.get("/ResourceTypes").json()
    assert [t["id"] for t in types["Resources"]] == ["User", "Group"]
    user_type = client.get("/ResourceTypes/User").json()
    assert user_type["schemaExtensions"] == [{"schema": ENTERPRISE_SCHEMA, "required": False}]
    schemas = client.get("/Schemas").json()
    ids = [s["id"] for s in schemas["Resources"]]
    assert {USER, GROUP, ENTERPRISE_SCHEMA} <= set(ids)
    enterprise = client.get(f"/Schemas/{ENTERPRISE_SCHEMA}").json()
    assert "manager" in [a["name"] for a in enterprise["attributes"]]
    phones = next(
        a
        for a in client.get(f"/Schemas/{USER}").json()["attributes"]
        if a["name"] == "phoneNumbers"
    )
    assert "E.164" in phones["description"]
    assert_scim_error(client.get("/Schemas/urn:nothing"), 404, None)
    assert_scim_error(client.get("/ResourceTypes/Nothing"), 404, None)
    assert_scim_error(client.post("/Schemas", json={}), 405, None)
    assert_scim_error(client.post("/Bulk", json={}), 501, None)


# ----------------------------------------------------------------------------- test helpers


def test_add_user_and_lookup(fake: FakeLearnster, client: httpx.Client) -> None:
    uid = fake.add_user({"userName": "Pre.Existing@Contoso.se", "displayName": "Pre"})
    chosen = fake.add_user({"id": "fixed-id", "userName": "fixed@contoso.se"})
    assert chosen == "fixed-id"
    found = fake.user_by_username("pre.existing@contoso.SE")
    assert found is not None
    assert found["id"] == uid
    assert fake.user_by_username("nobody") is None
    assert client.get(f"/Users/{uid}").json() == found
    with pytest.raises(ScimFault) as excinfo:
        fake.add_user({"userName": "PRE.existing@contoso.se"})
    assert excinfo.value.status == 409
    gid = fake.add_group({"displayName": "Tag", "members": [{"value": uid}]})
    assert fake.groups[gid]["members"] == [{"value": uid}]
    assert len(fake.requests) == 1  # only the GET went over HTTP


def test_request_log(fake: FakeLearnster, client: httpx.Client) -> None:
    user = create_user(client, "log@contoso.se")
    client.get("/Users", params={"filter": 'userName eq "log@contoso.se"'})
    patch(client, f"/Users/{user['id']}", {"op": "replace", "path": "active", "value": False})
    httpx.get(f"{fake.base_url}/Users")
    log = fake.requests
    assert [(r.method, r.path, r.status) for r in log] == [
        ("POST", "/Users", 201),
        ("GET", "/Users", 200),
        ("PATCH", f"/Users/{user['id']}", 200),
        ("GET", "/Users", 401),
    ]
    assert log[0].body == {"schemas": [USER], "userName": "log@contoso.se"}
    assert log[1].query == {"filter": 'userName eq "log@contoso.se"'}
    assert log[1].body is None
    assert log[2].body["Operations"] == [{"op": "replace", "path": "active", "value": False}]
    assert log[0].headers["content-type"] == "application/scim+json"
    assert all(r.fault is None for r in log)
    fake.clear_requests()
    assert fake.requests == []


def test_reject_scripts_an_error_for_one_user(fake: FakeLearnster, client: httpx.Client) -> None:
    existing = create_user(client, "Stuck@contoso.se")
    fake.reject("stuck@contoso.se", detail="Learnster says no")
    fake.reject("new@contoso.se", status=500, detail="boom", scim_type=None)
    response = patch(
        client, f"/Users/{existing['id']}", {"op": "replace", "path": "title", "value": "X"}
    )
    assert assert_scim_error(response, 400, "invalidValue") == "Learnster says no"
    assert_scim_error(client.delete(f"/Users/{existing['id']}"), 400, "invalidValue")
    response = client.post("/Users", json={"schemas": [USER], "userName": "NEW@contoso.se"})
    assert assert_scim_error(response, 500, None) == "boom"
    create_user(client, "fine@contoso.se")
    assert client.get(f"/Users/{existing['id']}").status_code == 200  # reads are not writes
    fake.clear_rejections()
    create_user(client, "new@contoso.se")


# ----------------------------------------------------------------------------- faults, latency


def test_fail_next_with_retry_after(fake: FakeLearnster, client: httpx.Client) -> None:
    fake.fail_next(2, 429, retry_after=2)
    fake.fail_next(1, 503, retry_after=0.5)
    fake.fail_next(1, 500)
    for status, retry_after in [(429, "2"), (429, "2"), (503, "0.5"), (500, None)]:
        response = client.get("/Users")
        assert_scim_error(response, status, None)
        assert response.headers.get("retry-after") == retry_after
    assert client.get("/Users").status_code == 200
    assert [r.fault for r in fake.requests] == [
        "scripted 429",
        "scripted 429",
        "scripted 503",
        "scripted 500",
        None,
    ]


def test_fail_next_does_not_apply_the_request(fake: FakeLearnster, client: httpx.Client) -> None:
    fake.fail_next(1, 503)
    response = client.post("/Users", json={"schemas": [USER], "userName": "a@contoso.se"})
    assert response.status_code == 503
    assert fake.users == {}


def test_drop_and_slow(fake: FakeLearnster, client: httpx.Client) -> None:
    fake.drop_next()
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/Users")
    fake.slow_next(seconds=0.5)
    with pytest.raises(httpx.ReadTimeout):
        client.post("/Users", json={"schemas": [USER], "userName": "slow@contoso.se"}, timeout=0.1)
    time.sleep(0.6)
    # A slow response is still applied, as a slow real server would: the retry must cope.
    assert fake.user_by_username("slow@contoso.se") is not None
    assert client.get("/Users").status_code == 200
    assert [r.status for r in fake.requests] == [0, 201, 200]


def test_clear_faults_forgets_scripted_faults_and_the_random_rate(
    fake: FakeLearnster, client: httpx.Client
) -> None:
    fake.fail_next(3, 503)
    fake.drop_next()
    fake.fault_rate = 1.0
    assert client.get("/Users").status_code == 503
    fake.clear_faults()
    assert [client.get("/Users").status_code for _ in range(5)] == [200] * 5
    assert fake.fault_rate == 0
    assert [r.fault for r in fake.requests] == ["scripted 503", *[None] * 5]


def _fault_run(seed: int, requests: int) -> list[tuple[int, str | None, str | None]]:
    with FakeLearnster(fault_rate=0.5, seed=seed) as fake:
        fake.slow_seconds = 0.01
        fake.retry_after_seconds = 3
        seen: list[tuple[int, str | None, str | None]] = []
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=fake.base_url, headers=headers, timeout=2) as http:
            for _ in range(requests):
                try:
                    response = http.get("/Users")
                    seen.append((response.status_code, response.headers.get("retry-after"), None))
                except httpx.TransportError:
                    seen.append((0, None, None))
        # The log tells slow responses (200 after the delay) from ordinary ones; HTTP dates
        # change with the clock, so they are compared as their form.
        run = []
        for (status, retry, _), entry in zip(seen, fake.requests, strict=True):
            if retry is not None and not retry.replace(".", "", 1).isdigit():
                assert parsedate_to_datetime(retry).tzinfo is not None
                retry = "<http-date>"
            run.append((status, retry, entry.fault))
        return run


def test_fault_rate_is_a_deterministic_mix() -> None:
    run = _fault_run(seed=7, requests=60)
    assert run == _fault_run(seed=7, requests=60)
    assert run != _fault_run(seed=8, requests=60)
    faults = {fault for _, _, fault in run if fault}
    assert faults == {"random 429", "random 500", "random 503", "random drop", "random slow"}
    assert 15 <= sum(1 for *_, fault in run if fault) <= 45
    assert {status for status, _, fault in run if fault == "random drop"} == {0}
    assert {status for status, _, fault in run if fault == "random slow"} == {200}
    retry_afters = [retry for status, retry, _ in run if status == 429]
    assert all(retry is not None for retry in retry_afters)
    forms = set()
    for retry in retry_afters:
        assert retry is not None
        if retry.isdigit():
            forms.add("seconds")
            assert retry == "3"
        elif retry.replace(".", "", 1).isdigit():
            forms.add("decimal")
            assert retry == "1.5"
        else:
            forms.add("date")
            assert retry == "<http-date>"
    assert forms == {"seconds", "decimal", "date"}


def test_latency_is_applied_and_overlaps(fake: FakeLearnster, client: httpx.Client) -> None:
    fake.latency_ms = 150
    started = time.perf_counter()
    assert client.get("/Users").status_code == 200
    assert time.perf_counter() - started >= 0.15

    def one(_: int) -> int:
        with httpx.Client(base_url=fake.base_url, headers=client.headers) as http:
            return http.get("/ServiceProviderConfig").status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(8))) == [200] * 8
    elapsed = time.perf_counter() - started
    assert 0.15 <= elapsed < 0.15 * 4  # concurrent requests wait together, not in turn
    fake.latency_ms = 0
    started = time.perf_counter()
    client.get("/Users")
    assert time.perf_counter() - started < 0.15


def test_latency_counts_from_the_arrival_of_the_request(
    fake: FakeLearnster, client: httpx.Client
) -> None:
    """The fake's own work is part of its latency, not added to it: "50 ms" means 50 ms."""
    fake.latency_ms = 250
    fake.slow_next(1, 0.2)  # stands for work that takes 200 ms
    started = time.perf_counter()
    assert client.get("/Users").status_code == 200
    elapsed = time.perf_counter() - started
    assert 0.25 <= elapsed < 0.25 + 0.15  # not 0.45: the work ran inside the latency
    fake.latency_ms = 0


def test_concurrent_writes_are_consistent(fake: FakeLearnster) -> None:
    barrier = threading.Barrier(8)

    def create(i: int) -> list[int]:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=fake.base_url, headers=headers) as http:
            barrier.wait()
            statuses = []
            for j in range(10):
                body = {"schemas": [USER], "userName": f"u{i}-{j}@contoso.se"}
                statuses.append(http.post("/Users", json=body).status_code)
            body = {"schemas": [USER], "userName": "SAME@contoso.se"}
            statuses.append(http.post("/Users", json=body).status_code)
            return statuses

    with ThreadPoolExecutor(8) as pool:
        results = [s for statuses in pool.map(create, range(8)) for s in statuses]
    assert results.count(201) == 81
    assert results.count(409) == 7
    assert len(fake.users) == 81
    assert len(fake.requests) == 88


def test_user_name_lookup_is_indexed() -> None:
    # 20k users: a userName lookup must not scan them (budget: well under 1 ms CPU).
    fake = FakeLearnster()
    try:
        for i in range(20_000):
            fake.add_user({"userName": f"user{i}@contoso.se"})
        headers = {"authorization": f"Bearer {TOKEN}"}
        request = Request(
            "GET", "/scim/v2/Users", {"filter": 'userName eq "USER19999@contoso.se"'}, headers, b""
        )
        started = time.process_time()
        for _ in range(200):
            response = fake._app(request)
        per_request = (time.process_time() - started) / 200
        assert json.loads(response.body)["totalResults"] == 1
        assert per_request < 0.001
    finally:
        fake.stop()


def test_timing_tells_when_the_first_request_since_a_reset_came(
    fake: FakeLearnster, client: httpx.Client
) -> None:
    origin = fake.base_url.split("/scim/", 1)[0]
    assert httpx.delete(f"{origin}/_fake/timing").status_code == 204
    assert httpx.get(f"{origin}/_fake/timing").json() == {"first_request_at": None}
    before = time.monotonic()
    client.get("/Users")
    time.sleep(0.05)
    client.get("/Groups")  # later requests do not move it
    first = httpx.get(f"{origin}/_fake/timing").json()["first_request_at"]
    assert before <= first <= before + 0.05
    httpx.delete(f"{origin}/_fake/timing")
    assert httpx.get(f"{origin}/_fake/timing").json() == {"first_request_at": None}
