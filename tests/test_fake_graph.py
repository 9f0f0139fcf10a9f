"""Tests for the fake Microsoft Graph tenant, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from syncd.fakes.certificates import ClientCertificate, make_client_certificate, thumbprints
from syncd.fakes.generator import Organisation, generate_organisation
from syncd.fakes.graph import FakeGraph

TOKEN = "test-token"
USER_TYPE = "#microsoft.graph.user"


@pytest.fixture(scope="module")
def org() -> Organisation:
    return generate_organisation(60, seed=4)


@contextlib.contextmanager
def serve(org: Organisation | None = None, **options: Any) -> Iterator[FakeGraph]:
    """A started fake, stopped in the background: shutdown waits out the server's poll interval."""
    graph = FakeGraph(org, **{"access_token": TOKEN, **options}).start()
    try:
        yield graph
    finally:
        threading.Thread(target=graph.stop, daemon=True).start()


@pytest.fixture
def fake(org: Organisation) -> Iterator[FakeGraph]:
    with serve(org) as graph:
        yield graph


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as http:
        yield http


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    inner = error["innerError"]
    assert inner["date"]
    assert inner["request-id"]
    assert inner["client-request-id"]
    return error


def _read_all(
    client: httpx.Client, url: str, params: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Follow nextLinks; return every item and the number of pages."""
    response = client.get(url, params=params)
    pages = 1
    items: list[dict[str, Any]] = []
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["value"]
        if "@odata.nextLink" not in body:
            return items, pages
        assert "$skiptoken=" in body["@odata.nextLink"]
        response = client.get(body["@odata.nextLink"])
        pages += 1


def _delta_round(
    client: httpx.Client,
    url: str,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], str, list[dict[str, Any]]]:
    """Run one delta round; return the items, the deltaLink and the raw pages."""
    response = client.get(url, params=params, headers=headers)
    items: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        items += body["value"]
        if "@odata.deltaLink" in body:
            assert "$deltatoken=" in body["@odata.deltaLink"]
            return items, body["@odata.deltaLink"], pages
        assert "$skiptoken=" in body["@odata.nextLink"]
        response = client.get(body["@odata.nextLink"], headers=headers)


# ---------------------------------------------------------------- reading users


def test_users_paging_until_done(fake: FakeGraph, client: httpx.Client, org: Organisation) -> None:
    items, pages = _read_all(client, f"{fake.base_url}/users", {"$top": "7"})
    assert pages == 9
    assert [u["id"] for u in items] == [u["id"] for u in org.users]


def test_users_default_page_and_properties(fake: FakeGraph, client: httpx.Client) -> None:
    body = client.get(f"{fake.base_url}/users").json()
    assert "@odata.nextLink" not in body  # 60 users fit the default page of 100
    assert body["@odata.context"].endswith("/$metadata#users")
    assert set(body["value"][0]) == {
        "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
        "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id",
    }  # fmt: skip


@pytest.mark.parametrize("top", ["1000", "0", "abc"])
def test_bad_top_is_400(fake: FakeGraph, client: httpx.Client, top: str) -> None:
    error = _error(client.get(f"{fake.base_url}/users", params={"$top": top}), 400, "BadRequest")
    assert top in error["message"]


def test_select(fake: FakeGraph, client: httpx.Client) -> None:
    params = {"$select": "id,displayName,accountEnabled,country,businessPhones"}
    items, _ = _read_all(client, f"{fake.base_url}/users", params)
    assert all(
        set(u) == {"id", "displayName", "accountEnabled", "country", "businessPhones"}
        for u in items
    )
    response = client.get(f"{fake.base_url}/users", params={"$select": "id,shoeSize"})
    assert "shoeSize" in _error(response, 400, "BadRequest")["message"]


def test_expand_manager(fake: FakeGraph, client: httpx.Client, org: Organisation) -> None:
    params = {"$select": "id", "$expand": "manager($select=id,displayName)", "$top": "999"}
    items, _ = _read_all(client, f"{fake.base_url}/users", params)
    managers = {u["id"]: u["managerId"] for u in org.users}
    for item in items:
        if managers[item["id"]] is None:
            assert "manager" not in item
        else:
            assert item["manager"]["id"] == managers[item["id"]]
            assert item["manager"]["@odata.type"] == USER_TYPE
            assert set(item["manager"]) == {"@odata.type", "id", "displayName"}
    full = client.get(f"{fake.base_url}/users", params={"$expand": "manager"}).json()["value"]
    assert any("userPrincipalName" in u.get("manager", {}) for u in full)


def test_get_user_by_id_and_upn_and_manager(
    fake: FakeGraph, client: httpx.Client, org: Organisation
) -> None:
    user = next(u for u in org.users if u["managerId"])
    by_id = client.get(f"{fake.base_url}/users/{user['id']}").json()
    by_upn = client.get(f"{fake.base_url}/users/{user['userPrincipalName'].upper()}").json()
    assert by_id == by_upn
    assert by_id["id"] == user["id"]
    manager = client.get(f"{fake.base_url}/users/{user['id']}/manager").json()
    assert manager["id"] == user["managerId"]
    assert manager["@odata.type"] == USER_TYPE
    ceo = next(u for u in org.users if u["managerId"] is None)
    _error(
        client.get(f"{fake.base_url}/users/{ceo['id']}/manager"), 404, "Request_ResourceNotFound"
    )
    _error(
        client.get(f"{fake.base_url}/users/nobody@contoso.example"), 404, "Request_ResourceNotFound"
    )


def test_filter(fake: FakeGraph, client: httpx.Client, org: Organisation) -> None:
    user = org.users[5]
    query = {"$filter": f"userPrincipalName eq '{user['userPrincipalName'].upper()}'"}
    assert [
        u["id"] for u in client.get(f"{fake.base_url}/users", params=query).json()["value"]
    ] == [user["id"]]
    irish = next(u for u in org.users if "'" in u["displayName"])
    quoted = irish["displayName"].replace("'", "''")
    query = {"$filter": f"displayName eq '{quoted}' or accountEnabled eq false"}
    found = client.get(f"{fake.base_url}/users", params=query).json()["value"]
    assert irish["id"] in [u["id"] for u in found]
    query = {"$filter": "startswith(displayName,'a') and accountEnabled eq true"}
    for item in client.get(f"{fake.base_url}/users", params=query).json()["value"]:
        assert item["displayName"].lower().startswith("a")
    _error(client.get(f"{fake.base_url}/users", params={"$filter": "nonsense("}), 400, "BadRequest")


def test_count_needs_consistency_level(fake: FakeGraph, client: httpx.Client) -> None:
    url = f"{fake.base_url}/users"
    _error(client.get(url, params={"$count": "true"}), 400, "Request_BadRequest")
    body = client.get(
        url, params={"$count": "true"}, headers={"ConsistencyLevel": "eventual"}
    ).json()
    assert body["@odata.count"] == 60


# ---------------------------------------------------------------- groups and members


def test_groups_and_members(fake: FakeGraph, client: httpx.Client, org: Organisation) -> None:
    groups, _ = _read_all(client, f"{fake.base_url}/groups", {"$top": "5"})
    assert {g["id"] for g in groups} == {g["id"] for g in org.groups}
    group = max(org.groups, key=lambda g: len(g["memberIds"]))
    members, pages = _read_all(
        client, f"{fake.base_url}/groups/{group['id']}/members", {"$top": "4"}
    )
    assert [m["id"] for m in members] == group["memberIds"]
    assert pages > 1
    assert all(m["@odata.type"] == USER_TYPE for m in members)
    one = client.get(
        f"{fake.base_url}/groups/{group['id']}", params={"$select": "id,displayName"}
    ).json()
    assert one["displayName"] == group["displayName"]
    _error(client.get(f"{fake.base_url}/groups/{'0' * 8}"), 404, "Request_ResourceNotFound")


def test_transitive_members_devices_and_contacts(
    fake: FakeGraph, client: httpx.Client, org: Organisation
) -> None:
    users = [u["id"] for u in org.users[:4]]
    inner = fake.add_group({"displayName": "Inner"}, users[:2])
    device = fake.add_device({"displayName": "Kiosk-01"}, group_ids=[inner])
    outer = fake.add_group({"displayName": "Outer"}, [users[2], inner])
    contact = fake.add_contact({"displayName": "Ext Partner", "mail": "p@partner.example"}, [outer])
    fake.add_member(inner, outer)  # a cycle must not loop forever
    direct = client.get(f"{fake.base_url}/groups/{outer}/members").json()["value"]
    assert {(m["id"], m["@odata.type"]) for m in direct} == {
        (users[2], USER_TYPE),
        (inner, "#microsoft.graph.group"),
        (contact, "#microsoft.graph.orgContact"),
    }
    transitive = client.get(f"{fake.base_url}/groups/{outer}/transitiveMembers").json()["value"]
    assert {m["id"] for m in transitive} == {users[0], users[1], users[2], inner, device, contact}
    assert {m["@odata.type"] for m in transitive} >= {"#microsoft.graph.device"}
    cast = client.get(
        f"{fake.base_url}/groups/{outer}/transitiveMembers/microsoft.graph.user"
    ).json()
    assert {m["id"] for m in cast["value"]} == set(users[:3])
    member_of = client.get(f"{fake.base_url}/users/{users[0]}/transitiveMemberOf").json()["value"]
    assert {inner, outer} <= {g["id"] for g in member_of}


# ---------------------------------------------------------------- errors, auth, faults


def test_missing_and_wrong_bearer(fake: FakeGraph) -> None:
    url = f"{fake.base_url}/users"
    _error(httpx.get(url), 401, "InvalidAuthenticationToken")
    wrong = httpx.get(url, headers={"Authorization": "Bearer nope"})
    _error(wrong, 401, "InvalidAuthenticationToken")
    assert "WWW-Authenticate" in wrong.headers


def test_missing_permission_is_403(fake: FakeGraph, client: httpx.Client) -> None:
    fake.permissions = {"User.Read.All"}
    error = _error(client.get(f"{fake.base_url}/groups"), 403, "Authorization_RequestDenied")
    assert error["message"] == "Insufficient privileges to complete the operation."
    assert client.get(f"{fake.base_url}/users").status_code == 200
    _error(client.get(f"{fake.base_url}/organization"), 403, "Authorization_RequestDenied")
    fake.permissions = {"Group.Read.All", "Organization.Read.All"}
    assert client.get(f"{fake.base_url}/groups").status_code == 200
    assert client.get(f"{fake.base_url}/organization").json()["value"][0]["id"] == fake.tenant_guid
    _error(client.get(f"{fake.base_url}/users/delta"), 403, "Authorization_RequestDenied")


def test_rate_faults_with_retry_after(fake: FakeGraph, client: httpx.Client) -> None:
    fake.fault_rate_429 = 1.0
    fake.retry_after_seconds = 7
    response = client.get(f"{fake.base_url}/users")
    _error(response, 429, "TooManyRequests")
    assert response.headers["Retry-After"] == "7"
    fake.fault_rate_429, fake.fault_rate_503 = 0.0, 1.0
    assert client.get(f"{fake.base_url}/users").status_code == 503
    fake.fault_rate_503 = 0.5
    statuses = Counter(client.get(f"{fake.base_url}/users").status_code for _ in range(16))
    assert statuses[503]
    assert statuses[200]


def test_failing_page_once_then_always(fake: FakeGraph, client: httpx.Client) -> None:
    fake.fail_page("/users/delta", 3)
    first = client.get(f"{fake.base_url}/users/delta()", headers={"Prefer": "odata.maxpagesize=10"})
    second = client.get(first.json()["@odata.nextLink"])
    link = second.json()["@odata.nextLink"]
    _error(client.get(link), 500, "generalException")
    assert client.get(link).status_code == 200  # the same nextLink can be retried
    fake.fail_page("/v1.0/users", 2, 503, times=None)
    page1 = client.get(f"{fake.base_url}/users", params={"$top": "10"}).json()
    for _ in range(3):
        response = client.get(page1["@odata.nextLink"])
        _error(response, 503, "serviceNotAvailable")
        assert "Retry-After" in response.headers


def test_request_log(fake: FakeGraph, client: httpx.Client) -> None:
    fake.clear_requests()
    client.get(f"{fake.base_url}/users", params={"$top": "3"}, headers={"client-request-id": "abc"})
    httpx.get(f"{fake.base_url}/users")
    logged = fake.requests
    assert [(r.method, r.path, r.status) for r in logged] == [
        ("GET", "/v1.0/users", 200),
        ("GET", "/v1.0/users", 401),
    ]
    assert logged[0].query == {"$top": "3"}
    assert logged[0].headers["client-request-id"] == "abc"
    assert "authorization" not in logged[0].headers


# ---------------------------------------------------------------- OAuth2


def _token_request(fake: FakeGraph, tenant: str | None = None, **form: str) -> httpx.Response:
    data = {
        "grant_type": "client_credentials",
        "client_id": fake.client_id,
        "client_secret": "graph-secret",
        "scope": "https://graph.microsoft.com/.default",
    }
    data.update(form)
    return httpx.post(f"{fake.origin}/{tenant or fake.tenant_id}/oauth2/v2.0/token", data=data)


def test_client_credentials(fake: FakeGraph) -> None:
    config = httpx.get(
        f"{fake.origin}/{fake.tenant_id}/v2.0/.well-known/openid-configuration"
    ).json()
    assert config["token_endpoint"].startswith(fake.origin)
    assert config["issuer"]
    assert config["authorization_endpoint"]
    response = _token_request(fake)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == body["ext_expires_in"] == 3599
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert httpx.get(f"{fake.base_url}/users", headers=headers).status_code == 200
    fake.expire_access_tokens()
    expired = httpx.get(f"{fake.base_url}/users", headers=headers)
    assert "expired" in _error(expired, 401, "InvalidAuthenticationToken")["message"]


@pytest.mark.parametrize(
    ("tenant", "form", "status", "error", "aadsts"),
    [
        ("fabrikam.example", {}, 400, "invalid_request", 90002),
        (
            None,
            {"client_id": "22222222-2222-2222-2222-222222222222"},
            400,
            "unauthorized_client",
            700016,
        ),
        (None, {"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        (None, {"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
        (
            None,
            {"scope": "https://graph.microsoft.com/User.Read.All"},
            400,
            "invalid_scope",
            1002012,
        ),
        (None, {"scope": "https://127.0.0.1/.default"}, 400, "invalid_resource", 500011),
    ],
)
def test_token_errors(
    fake: FakeGraph, tenant: str | None, form: dict[str, str], status: int, error: str, aadsts: int
) -> None:
    response = _token_request(fake, tenant, **form)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert body["error_description"].startswith(f"AADSTS{aadsts}:")
    assert body["error_codes"] == [aadsts]


def test_azure_identity_gets_a_token_over_tls(org: Organisation) -> None:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import ClientSecretCredential

    with serve(org, tls=True, access_token=None) as fake:
        assert fake.base_url.startswith("https://")
        assert fake.ca_file
        credential = ClientSecretCredential(
            fake.tenant_id,
            fake.client_id,
            "graph-secret",
            authority=fake.authority,
            disable_instance_discovery=True,
            connection_verify=fake.ca_file,
        )
        token = credential.get_token("https://graph.microsoft.com/.default")
        assert token.expires_on > time.time() + 3000
        context = ssl.create_default_context(cafile=fake.ca_file)
        headers = {"Authorization": f"Bearer {token.token}"}
        assert (
            httpx.get(f"{fake.base_url}/users", headers=headers, verify=context).status_code == 200
        )
        wrong = ClientSecretCredential(
            fake.tenant_id,
            fake.client_id,
            "not-the-secret",
            authority=fake.authority,
            disable_instance_discovery=True,
            connection_verify=fake.ca_file,
        )
        with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
            wrong.get_token("https://graph.microsoft.com/.default")


# ---------------------------------------------------------------- certificate credentials


@pytest.fixture(scope="module")
def app_certificate() -> ClientCertificate:
    return make_client_certificate("syncd-app")


@pytest.fixture(scope="module")
def stranger_certificate() -> ClientCertificate:
    return make_client_certificate("not-registered")


def _signed_assertion(
    fake: Any,
    signer: ClientCertificate,
    *,
    named: ClientCertificate | None = None,
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A client assertion as MSAL makes one for ``fake`` (a FakeGraph, or anything with its
    ``origin``, ``tenant_guid`` and ``client_id``): RS256 with ``x5t``, signed by ``signer``.

    ``named`` is the certificate the header's thumbprint names (``signer`` unless given);
    ``header`` and ``claims`` override or (as None) remove fields.
    """
    now = int(time.time())
    head: dict[str, Any] = {
        "alg": "RS256",
        "typ": "JWT",
        **thumbprints((named or signer).certificate),
    }
    del head["x5t#S256"]
    body: dict[str, Any] = {
        "aud": f"{fake.origin}/{fake.tenant_guid}/oauth2/v2.0/token",
        "iss": fake.client_id,
        "sub": fake.client_id,
        "exp": now + 600,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    head.update(header or {})
    body.update(claims)
    head = {k: v for k, v in head.items() if v is not None}
    body = {k: v for k, v in body.items() if v is not None}
    signing_input = ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
        for part in (head, body)
    ).encode()
    key = serialization.load_pem_private_key(signer.private_key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    scheme: padding.AsymmetricPadding = padding.PKCS1v15()
    if head.get("alg") == "PS256":
        scheme = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    signature = key.sign(signing_input, scheme, hashes.SHA256())
    return f"{signing_input.decode()}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _assertion_request(fake: FakeGraph, assertion: str, **form: str) -> httpx.Response:
    data = {
        "grant_type": "client_credentials",
        "client_id": fake.client_id,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
        "scope": "https://graph.microsoft.com/.default",
    }
    data.update(form)
    return httpx.post(fake.token_url, data=data)


def test_certificate_credential_gets_a_token_over_tls(
    org: Organisation,
    app_certificate: ClientCertificate,
    stranger_certificate: ClientCertificate,
    tmp_path: Path,
) -> None:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import CertificateCredential

    with serve(
        org, tls=True, access_token=None, client_certificate=app_certificate.certificate_pem
    ) as fake:
        assert fake.ca_file
        options: dict[str, Any] = {
            "authority": fake.authority,
            "disable_instance_discovery": True,
            "connection_verify": fake.ca_file,
        }
        good = app_certificate.write(tmp_path / "app.pem")
        credential = CertificateCredential(
            fake.tenant_id, fake.client_id, certificate_path=str(good), **options
        )
        token = credential.get_token("https://graph.microsoft.com/.default")
        assert token.expires_on > time.time() + 3000
        context = ssl.create_default_context(cafile=fake.ca_file)
        headers = {"Authorization": f"Bearer {token.token}"}
        assert (
            httpx.get(f"{fake.base_url}/users", headers=headers, verify=context).status_code == 200
        )
        # the secret still works beside the certificate
        secret = httpx.post(
            fake.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": fake.client_id,
                "client_secret": "graph-secret",
                "scope": "https://graph.microsoft.com/.default",
            },
            verify=context,
        )
        assert secret.status_code == 200

        unknown = stranger_certificate.write(tmp_path / "stranger.pem")
        wrong = CertificateCredential(
            fake.tenant_id, fake.client_id, certificate_path=str(unknown), **options
        )
        with pytest.raises(ClientAuthenticationError, match="AADSTS700027") as refused:
            wrong.get_token("https://graph.microsoft.com/.default")
        assert "not registered on application" in str(refused.value)
        assert stranger_certificate.thumbprint in str(refused.value)


def test_a_certificate_registered_later_is_accepted(
    org: Organisation, app_certificate: ClientCertificate, stranger_certificate: ClientCertificate
) -> None:
    """Rotation: an app may hold several certificates; each one's assertions are taken."""
    with serve(org, client_certificate=app_certificate.certificate_pem) as fake:
        later = _signed_assertion(fake, stranger_certificate)
        assert _assertion_request(fake, later).json()["error_codes"] == [700027]
        fake.add_client_certificate(stranger_certificate.pem)  # key beside it: ignored
        assert _assertion_request(fake, later).status_code == 200
        first = _signed_assertion(fake, app_certificate)
        assert _assertion_request(fake, first).status_code == 200


@pytest.mark.parametrize(
    ("case", "header", "claims"),
    [
        ("RS256 with x5t", {}, {}),
        (
            "PS256 with x5t#S256",
            {"alg": "PS256", "x5t": None, "x5t#S256": "sha256"},
            {},
        ),
        ("the tenant's domain in aud", {}, {"aud": "domain"}),
        ("expired within the clock skew", {}, {"exp": -60}),
        ("nbf within the clock skew", {}, {"nbf": 60}),
        ("x5t with base64 padding", {"x5t": "padded"}, {}),
    ],
)
def test_token_for_a_good_assertion(
    org: Organisation,
    app_certificate: ClientCertificate,
    case: str,
    header: dict[str, Any],
    claims: dict[str, Any],
) -> None:
    with serve(org, client_certificate=app_certificate.certificate_pem) as fake:
        prints = thumbprints(app_certificate.certificate)
        if header.get("x5t#S256") == "sha256":
            header = {**header, "x5t#S256": prints["x5t#S256"]}
        if header.get("x5t") == "padded":
            header = {"x5t": prints["x5t"] + "="}
        now = int(time.time())
        claims = {k: now + v if k in ("exp", "nbf") else v for k, v in claims.items()}
        if claims.get("aud") == "domain":
            claims["aud"] = f"{fake.origin}/{fake.tenant_id}/oauth2/v2.0/token"
        assertion = _signed_assertion(fake, app_certificate, header=header, **claims)
        response = _assertion_request(fake, assertion)
        assert response.status_code == 200, (case, response.text)
        token = response.json()["access_token"]
        users = httpx.get(f"{fake.base_url}/users", headers={"Authorization": f"Bearer {token}"})
        assert users.status_code == 200


@pytest.mark.parametrize(
    ("case", "status", "error", "aadsts", "words"),
    [
        ("wrong key", 401, "invalid_client", 700027, "failed signature validation"),
        ("unknown thumbprint", 401, "invalid_client", 700027, "The key was not found"),
        ("no thumbprint", 401, "invalid_client", 700027, "The key was not found"),
        ("expired", 401, "invalid_client", 700024, "not within its valid time range"),
        ("not yet valid", 401, "invalid_client", 700024, "not within its valid time range"),
        ("wrong audience", 401, "invalid_client", 700023, "audience claim does not match"),
        (
            "Microsoft's endpoint as audience",
            401,
            "invalid_client",
            700023,
            "audience claim does not match",
        ),
        ("issuer is not the client", 401, "invalid_client", 700021, "application identifier"),
        ("subject is not the issuer", 401, "invalid_client", 50048, "Subject must match"),
        ("HS256", 400, "invalid_request", 5002730, "Unsupported key"),
        ("alg none", 400, "invalid_request", 5002730, "Unsupported key"),
        ("audience list", 400, "invalid_request", 50027, "invalid or malformed"),
        ("no exp", 400, "invalid_request", 50027, "invalid or malformed"),
        ("not a JWT", 400, "invalid_request", 50027, "invalid or malformed"),
        ("garbage x5t", 401, "invalid_client", 700027, "The key was not found"),
        ("wrong assertion type", 400, "invalid_request", 90011, "client assertion type"),
    ],
)
def test_assertion_refusals(
    org: Organisation,
    app_certificate: ClientCertificate,
    stranger_certificate: ClientCertificate,
    case: str,
    status: int,
    error: str,
    aadsts: int,
    words: str,
) -> None:
    with serve(org, client_certificate=app_certificate.certificate_pem) as fake:
        now = int(time.time())
        app, stranger = app_certificate, stranger_certificate
        form: dict[str, str] = {}
        assertion = {
            "wrong key": lambda: _signed_assertion(fake, stranger, named=app),
            "unknown thumbprint": lambda: _signed_assertion(fake, stranger),
            "no thumbprint": lambda: _signed_assertion(fake, app, header={"x5t": None}),
            "expired": lambda: _signed_assertion(fake, app, exp=now - 3600, iat=now - 4200),
            "not yet valid": lambda: _signed_assertion(fake, app, nbf=now + 3600),
            "wrong audience": lambda: _signed_assertion(
                fake, app, aud=f"{fake.origin}/fabrikam.example/oauth2/v2.0/token"
            ),
            "Microsoft's endpoint as audience": lambda: _signed_assertion(
                fake,
                app,
                aud=f"https://login.microsoftonline.com/{fake.tenant_guid}/oauth2/v2.0/token",
            ),
            "issuer is not the client": lambda: _signed_assertion(
                fake, app, iss="22222222-2222-2222-2222-222222222222"
            ),
            "subject is not the issuer": lambda: _signed_assertion(fake, app, sub="someone"),
            "HS256": lambda: _signed_assertion(fake, app, header={"alg": "HS256"}),
            "alg none": lambda: _signed_assertion(fake, app, header={"alg": "none"}),
            "audience list": lambda: _signed_assertion(fake, app, aud=[fake.token_url]),
            "no exp": lambda: _signed_assertion(fake, app, exp=None),
            "not a JWT": lambda: "not-a-jwt",
            "garbage x5t": lambda: _signed_assertion(fake, app, header={"x5t": "%%%"}),
            "wrong assertion type": lambda: _signed_assertion(fake, app),
        }[case]()
        if case == "wrong assertion type":
            form["client_assertion_type"] = (
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
            )
        response = _assertion_request(fake, assertion, **form)
        assert response.status_code == status, response.text
        body = response.json()
        assert body["error"] == error
        assert body["error_description"].startswith(f"AADSTS{aadsts}:")
        assert words in body["error_description"]
        assert body["error_codes"] == [aadsts]


# ---------------------------------------------------------------- msgraph-sdk fidelity


def test_msgraph_sdk_reads_the_fake(fake: FakeGraph, org: Organisation) -> None:
    from kiota_abstractions.authentication import (
        AccessTokenProvider,
        AllowedHostsValidator,
        BaseBearerTokenAuthenticationProvider,
    )
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.users.users_request_builder import UsersRequestBuilder
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph.graph_service_client import GraphServiceClient

    class StaticToken(AccessTokenProvider):
        async def get_authorization_token(
            self, uri: str, additional_authentication_context: Any = None
        ) -> str:
            return TOKEN

        def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
            return AllowedHostsValidator(["127.0.0.1"])

    async def read() -> dict[str, Any]:
        adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticToken()))
        adapter.base_url = fake.base_url
        client = GraphServiceClient(request_adapter=adapter)
        query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            select=["id", "displayName", "userPrincipalName", "accountEnabled"], top=25
        )
        page = await client.users.get(
            request_configuration=RequestConfiguration(query_parameters=query)
        )
        assert page is not None
        assert page.value is not None
        ids = [u.id for u in page.value]
        pages = 1
        while page.odata_next_link:
            page = await client.users.with_url(page.odata_next_link).get()
            assert page is not None
            assert page.value is not None
            ids += [u.id for u in page.value]
            pages += 1
        delta = await client.users.delta.get()
        members = await client.groups.by_group_id(org.groups[0]["id"]).members.get()
        assert delta is not None
        assert delta.value is not None
        assert delta.odata_delta_link is not None
        fake.update_user(org.users[0]["id"], jobTitle="Astronaut")
        changes = await client.users.delta.with_url(delta.odata_delta_link).get()
        assert changes is not None
        assert changes.value is not None
        assert [(u.id, u.job_title) for u in changes.value] == [(org.users[0]["id"], "Astronaut")]
        assert members is not None
        assert members.value is not None
        return {
            "ids": ids,
            "pages": pages,
            "delta_ids": {u.id for u in delta.value},
            "delta_link": delta.odata_delta_link,
            "members": [m.id for m in members.value],
        }

    result = asyncio.run(read())
    assert result["ids"] == [u["id"] for u in org.users]
    assert result["pages"] == 3
    assert result["delta_ids"] == set(result["ids"])
    assert "$deltatoken=" in result["delta_link"]
    assert result["members"] == org.groups[0]["memberIds"]
    paths = {r.path for r in fake.requests}
    assert {"/v1.0/users", "/v1.0/users/delta()"} <= paths


def test_msgraph_sdk_with_azure_identity_over_tls(org: Organisation) -> None:
    from azure.identity.aio import ClientSecretCredential
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph.graph_service_client import GraphServiceClient
    from msgraph_core import GraphClientFactory

    async def read(fake: FakeGraph) -> list[str | None]:
        assert fake.ca_file
        credential = ClientSecretCredential(
            fake.tenant_id,
            fake.client_id,
            "graph-secret",
            authority=fake.authority,
            disable_instance_discovery=True,
            connection_verify=fake.ca_file,
        )
        auth = AzureIdentityAuthenticationProvider(
            credential, scopes=["https://graph.microsoft.com/.default"], allowed_hosts=["127.0.0.1"]
        )
        verify = ssl.create_default_context(cafile=fake.ca_file)
        http = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(verify=verify)
        )
        adapter = GraphRequestAdapter(auth, client=http)
        adapter.base_url = fake.base_url
        client = GraphServiceClient(request_adapter=adapter)
        try:
            page = await client.users.get()
            assert page is not None
            assert page.value is not None
            return [u.user_principal_name for u in page.value]
        finally:
            await credential.close()
            await http.aclose()

    with serve(org, tls=True, access_token=None) as fake:
        assert asyncio.run(read(fake)) == [u["userPrincipalName"] for u in org.users]


# ---------------------------------------------------------------- delta queries


def _small_tenant(fake: FakeGraph) -> dict[str, str]:
    """CEO <- boss <- (ann, bob); carl without manager; dora in the recycle bin."""
    ids: dict[str, str] = {}
    for name in ("ceo", "boss", "ann", "bob", "carl", "dora"):
        ids[name] = fake.add_user(
            {
                "userPrincipalName": f"{name}@contoso.example",
                "displayName": name.title(),
                "jobTitle": "Staff",
                "city": "Stockholm",
            }
        )
    fake.set_manager(ids["boss"], ids["ceo"])
    fake.set_manager(ids["ann"], ids["boss"])
    fake.set_manager(ids["bob"], ids["boss"])
    fake.set_manager(ids["dora"], ids["ceo"])
    fake.soft_delete_user(ids["dora"])
    return ids


def _by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for item in items:
        assert item["id"] not in result, f"{item['id']} reported twice"
        result[item["id"]] = item
    return result


def test_users_delta_rounds(client: httpx.Client) -> None:
    with serve() as fake:
        ids = _small_tenant(fake)
        select = {"$select": "displayName,jobTitle,accountEnabled,manager"}
        items, link, _ = _delta_round(client, f"{fake.base_url}/users/delta", select)
        first = _by_id(items)
        assert set(first) == {ids[n] for n in ("ceo", "boss", "ann", "bob", "carl")}
        assert first[ids["ann"]] == {
            "id": ids["ann"],
            "displayName": "Ann",
            "jobTitle": "Staff",
            "accountEnabled": True,
            "manager@delta": [{"@odata.type": USER_TYPE, "id": ids["boss"]}],
        }
        assert "manager@delta" not in first[ids["carl"]]
        assert "city" not in first[ids["ann"]]

        fake.update_user(ids["ann"], displayName="Ann-Marie")
        fake.update_user(ids["carl"], city="Malmö")  # not selected: not tracked
        fake.disable_user(ids["carl"])
        fake.set_manager(ids["carl"], ids["ceo"])
        fake.set_manager(ids["bob"], None)
        fake.restore_user(ids["dora"])
        fake.soft_delete_user(ids["boss"])  # ann loses her manager
        eve = fake.add_user({"userPrincipalName": "eve@contoso.example", "displayName": "Eve"})
        fake.hard_delete_user(ids["ceo"])  # carl and dora lose theirs

        items, link2, _ = _delta_round(client, link)
        assert _by_id(items) == {
            ids["ann"]: {
                "id": ids["ann"],
                "displayName": "Ann-Marie",
                "manager@delta": [
                    {"@odata.type": USER_TYPE, "id": ids["boss"], "@removed": {"reason": "deleted"}}
                ],
            },
            ids["carl"]: {
                "id": ids["carl"],
                "accountEnabled": False,
                "manager@delta": [
                    {"@odata.type": USER_TYPE, "id": ids["ceo"], "@removed": {"reason": "deleted"}}
                ],
            },
            ids["bob"]: {
                "id": ids["bob"],
                "manager@delta": [
                    {"@odata.type": USER_TYPE, "id": ids["boss"], "@removed": {"reason": "deleted"}}
                ],
            },
            ids["dora"]: {
                "id": ids["dora"],
                "displayName": "Dora",
                "jobTitle": "Staff",
                "accountEnabled": True,
            },
            ids["boss"]: {"id": ids["boss"], "@removed": {"reason": "changed"}},
            ids["ceo"]: {"id": ids["ceo"], "@removed": {"reason": "deleted"}},
            eve: {"id": eve, "displayName": "Eve", "jobTitle": None, "accountEnabled": True},
        }

        items, link3, _ = _delta_round(client, link2)
        assert items == []
        fake.restore_user(ids["boss"])  # ann's manager comes back with him
        items, _, _ = _delta_round(client, link3)
        changes = _by_id(items)
        assert changes[ids["boss"]]["displayName"] == "Boss"
        assert changes[ids["ann"]] == {
            "id": ids["ann"],
            "manager@delta": [{"@odata.type": USER_TYPE, "id": ids["boss"]}],
        }
        # the first deltaLink still works: consumers are independent
        again, _, _ = _delta_round(client, link)
        assert eve in _by_id(again)


def test_users_delta_paging_and_function_forms(
    fake: FakeGraph, client: httpx.Client, org: Organisation
) -> None:
    prefer = {"Prefer": "odata.maxpagesize=25"}
    for path in ("delta", "delta()", "microsoft.graph.delta()", "microsoft.graph.delta"):
        items, _, pages = _delta_round(client, f"{fake.base_url}/users/{path}", headers=prefer)
        assert [len(p["value"]) for p in pages] == [25, 25, 10]
        assert [u["id"] for u in items] == [u["id"] for u in org.users]
    default, _, pages = _delta_round(client, f"{fake.base_url}/users/delta")
    assert len(pages) == 1
    assert set(default[0]) >= {"id", "userPrincipalName", "displayName"}


def test_delta_with_empty_pages(fake: FakeGraph, client: httpx.Client, org: Organisation) -> None:
    fake.empty_pages = True
    items, _, pages = _delta_round(
        client, f"{fake.base_url}/users/delta", headers={"Prefer": "odata.maxpagesize=20"}
    )
    assert [p["value"] for p in pages].count([]) >= 1
    assert "@odata.nextLink" in pages[0]
    assert pages[0]["value"] == []
    assert [u["id"] for u in items] == [u["id"] for u in org.users]


def test_expired_and_unknown_tokens_are_410(fake: FakeGraph, client: httpx.Client) -> None:
    headers = {"Prefer": "odata.maxpagesize=10"}
    _, link, _ = _delta_round(client, f"{fake.base_url}/users/delta", headers=headers)
    in_flight = client.get(f"{fake.base_url}/groups/delta", headers=headers).json()[
        "@odata.nextLink"
    ]
    fake.expire_delta_tokens()
    error = _error(client.get(link), 410, "syncStateNotFound")
    assert "resync" in error["message"].lower()
    _error(client.get(in_flight), 410, "syncStateNotFound")
    _error(
        client.get(f"{fake.base_url}/users/delta", params={"$deltatoken": "garbage"}),
        410,
        "syncStateNotFound",
    )
    items, _, _ = _delta_round(client, f"{fake.base_url}/users/delta")  # a new round works
    assert len(items) == 60


def test_groups_delta_rounds(client: httpx.Client) -> None:
    with serve() as fake:
        users = [fake.add_user({"userPrincipalName": f"u{i}@contoso.example"}) for i in range(5)]
        sales = fake.add_group({"displayName": "Sales"}, users[:3])
        ops = fake.add_group({"displayName": "Ops"}, users[3:])
        doomed = fake.add_group({"displayName": "Doomed"}, [users[0]])
        items, link, _ = _delta_round(
            client,
            f"{fake.base_url}/groups/delta",
            {"$select": "displayName,description,members"},
        )
        first = _by_id(items)
        assert first[sales] == {
            "id": sales,
            "displayName": "Sales",
            "description": None,
            "members@delta": [{"@odata.type": USER_TYPE, "id": u} for u in users[:3]],
        }

        fake.add_member(sales, users[4])
        fake.remove_member(sales, users[0])
        fake.add_member(ops, sales)  # nesting shows as a group member
        fake.rename_group(ops, "Operations")
        fake.update_group(sales, mailNickname="sales2")  # not selected: not tracked
        fake.delete_group(doomed)
        fake.soft_delete_user(users[1])  # leaves Sales while in the recycle bin
        device = fake.add_device({"displayName": "Printer"}, group_ids=[ops])
        fresh = fake.add_group({"displayName": "Fresh"}, [users[2]])

        items, link2, _ = _delta_round(client, link)
        removed = {"@removed": {"reason": "deleted"}}
        assert _by_id(items) == {
            sales: {
                "id": sales,
                "members@delta": [
                    {"@odata.type": USER_TYPE, "id": users[4]},
                    {"@odata.type": USER_TYPE, "id": users[0], **removed},
                    {"@odata.type": USER_TYPE, "id": users[1], **removed},
                ],
            },
            ops: {
                "id": ops,
                "displayName": "Operations",
                "members@delta": [
                    {"@odata.type": "#microsoft.graph.group", "id": sales},
                    {"@odata.type": "#microsoft.graph.device", "id": device},
                ],
            },
            doomed: {"id": doomed, "@removed": {"reason": "deleted"}},
            fresh: {
                "id": fresh,
                "displayName": "Fresh",
                "description": None,
                "members@delta": [{"@odata.type": USER_TYPE, "id": users[2]}],
            },
        }
        fake.restore_user(users[1])
        items, _, _ = _delta_round(client, link2)
        assert items == [
            {"id": sales, "members@delta": [{"@odata.type": USER_TYPE, "id": users[1]}]}
        ]


def test_big_group_split_across_pages(client: httpx.Client) -> None:
    with serve() as fake:
        users = [fake.add_user({"userPrincipalName": f"p{i}@contoso.example"}) for i in range(2500)]
        small = fake.add_group({"displayName": "Small"}, users[:3])
        big = fake.add_group({"displayName": "Everyone"}, users)
        items, link, pages = _delta_round(
            client, f"{fake.base_url}/groups/delta", {"$select": "displayName,members"}
        )
        copies = [i for i in items if i["id"] == big]
        assert len(copies) == 3
        assert all(c["displayName"] == "Everyone" for c in copies)
        assert sum(1 for p in pages if any(i["id"] == big for i in p["value"])) == 3
        assert all(sum(len(i.get("members@delta", [])) for i in p["value"]) <= 1000 for p in pages)
        members = [m["id"] for c in copies for m in c["members@delta"]]
        assert members == users
        assert any(i["id"] == small for i in items)
        for user in users[:1200]:
            fake.remove_member(big, user)
        items, _, _ = _delta_round(client, link)
        gone = [m for i in items for m in i["members@delta"]]
        assert len(items) == 2
        assert len(gone) == 1200
        assert all(m["@removed"] == {"reason": "deleted"} for m in gone)


def test_full_delta_read_in_pages_is_fast(client: httpx.Client) -> None:
    org = generate_organisation(20_000, seed=9, groups=400, memberships_per_user=5)
    with serve(org) as fake:
        started = time.perf_counter()
        users, pages = _read_all(client, f"{fake.base_url}/users", {"$top": "999"})
        assert len(users) == 20_000
        assert pages == 21
        items, _, _ = _delta_round(
            client, f"{fake.base_url}/users/delta", headers={"Prefer": "odata.maxpagesize=999"}
        )
        assert len(items) == 20_000
        groups, _, _ = _delta_round(
            client, f"{fake.base_url}/groups/delta", {"$select": "displayName,members"}
        )
        assert {g["id"] for g in groups} == {g["id"] for g in org.groups}
        assert time.perf_counter() - started < 10


# ---------------------------------------------------------------- control API over HTTP


def test_control_api_scripts_the_tenant(
    fake: FakeGraph, client: httpx.Client, org: Organisation
) -> None:
    control = f"{fake.origin}/_fake"
    created = httpx.post(
        f"{control}/users", json={"userPrincipalName": "new@contoso.example", "displayName": "New"}
    )
    assert created.status_code == 201
    uid = created.json()["id"]
    assert httpx.patch(f"{control}/users/{uid}", json={"jobTitle": "Boss"}).status_code == 204
    assert (
        httpx.put(
            f"{control}/users/{uid}/manager", json={"managerId": org.users[0]["id"]}
        ).status_code
        == 204
    )
    assert client.get(f"{fake.base_url}/users/{uid}/manager").json()["id"] == org.users[0]["id"]
    assert httpx.post(f"{control}/users/{uid}/softDelete").status_code == 204
    _error(client.get(f"{fake.base_url}/users/{uid}"), 404, "Request_ResourceNotFound")
    assert httpx.post(f"{control}/users/{uid}/restore").status_code == 204
    group = httpx.post(f"{control}/groups", json={"displayName": "G", "memberIds": [uid]}).json()[
        "id"
    ]
    assert [
        m["id"] for m in client.get(f"{fake.base_url}/groups/{group}/members").json()["value"]
    ] == [uid]
    assert (
        httpx.put(f"{control}/faults", json={"rate429": 1.0, "retryAfterSeconds": 3}).status_code
        == 204
    )
    assert client.get(f"{fake.base_url}/users").headers["Retry-After"] == "3"
    assert httpx.delete(f"{control}/faults").status_code == 204
    assert httpx.post(f"{control}/expireDeltaTokens").status_code == 204
    assert httpx.get(f"{control}/state").json()["users"] == 61
    assert httpx.delete(f"{control}/users/{'f' * 8}").status_code == 404
    assert httpx.get(f"{control}/requests").json()


def test_control_api_bulk_updates_users(fake: FakeGraph, org: Organisation) -> None:
    control = f"{fake.origin}/_fake"
    ids = [u["id"] for u in org.users[:3]]
    updates = [{"id": uid, "jobTitle": f"Bulk {i}"} for i, uid in enumerate(ids)]
    answer = httpx.post(f"{control}/users/bulk-update", json=updates)
    assert answer.status_code == 201
    assert answer.json() == {"updated": 3}
    titles = {u["id"]: u["jobTitle"] for u in fake.users}
    assert [titles[uid] for uid in ids] == ["Bulk 0", "Bulk 1", "Bulk 2"]
    assert httpx.post(f"{control}/users/bulk-update", json=[{"jobTitle": "x"}]).status_code == 400
    assert httpx.post(f"{control}/users/bulk-update", json={"a": 1}).status_code == 400
    assert httpx.post(f"{control}/users/bulk-update", json=[{"id": "nope"}]).status_code == 404


# ---------------------------------------------------------------- command line


def _first_line(process: subprocess.Popen[str], timeout: float = 20) -> str:
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.append(process.stdout.readline() if process.stdout else "")
    )
    reader.start()
    reader.join(timeout)
    assert lines, "no output from the fake"
    return lines[0].strip()


def test_command_line_prints_url_and_stops_on_sigterm() -> None:
    # buffered stdout, as under systemd or a benchmark harness: the URL line must be flushed
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "syncd.fakes",
            "graph",
            "--port",
            "0",
            "--users",
            "30",
            "--seed",
            "2",
            "--token",
            "T",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = _first_line(process)
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/v1.0")
        body = httpx.get(f"{url}/users", headers={"Authorization": "Bearer T"}).json()
        assert len(body["value"]) == 30
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_command_line_registers_a_client_certificate(
    app_certificate: ClientCertificate, tmp_path: Path
) -> None:
    pem = app_certificate.write(tmp_path / "graph.pem")  # key and certificate: the key is ignored
    process = subprocess.Popen(
        [
            sys.executable, "-m", "syncd.fakes", "graph", "--users", "5",
            "--client-certificate", str(pem),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        url = _first_line(process)
        origin = url.removesuffix("/v1.0")
        tenant = SimpleNamespace(
            origin=origin,
            tenant_guid=str(uuid.uuid5(uuid.NAMESPACE_DNS, "contoso.example")),
            client_id="11111111-1111-1111-1111-111111111111",
        )
        data = {
            "grant_type": "client_credentials",
            "client_id": tenant.client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": _signed_assertion(tenant, app_certificate),
            "scope": "https://graph.microsoft.com/.default",
        }
        token_url = f"{origin}/contoso.example/oauth2/v2.0/token"
        response = httpx.post(token_url, data=data)
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        users = httpx.get(f"{url}/users", headers={"Authorization": f"Bearer {token}"}).json()
        assert len(users["value"]) == 5
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_command_line_serves_learnster() -> None:
    pytest.importorskip("syncd.fakes.learnster")
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd.fakes", "learnster", "--port", "0", "--token", "LT"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = _first_line(process)
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/scim/v2")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
