"""Fuzzing with hypothesis: whatever Graph or Learnster answer, syncd returns well-typed values
or raises one of its own errors (syncd.errors), never anything else.

Graph pages and SCIM replies are built from arbitrary JSON and from values shaped like real
answers whose fields hold anything; they feed the pure decoders, and GraphSource and ScimSink
over real HTTP (one scripted loopback server per module). ``make test`` runs a bounded number of
examples; ``make fuzz`` (HYPOTHESIS_PROFILE=fuzz, see tests/conftest.py) many more.
Inputs that once broke something are kept as ``@example``s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from syncd.adapters.graph import GraphSource
from syncd.adapters.scim import ScimSink
from syncd.adapters.scim_replies import classify, list_resources, resource_of
from syncd.adapters.sqlite import Store
from syncd.adapters.transport import parse_retry_after
from syncd.config import Config, parse_config
from syncd.core.decode import (
    MAX_VALUE_LENGTH,
    Decoded,
    decode_delta_user,
    decode_user,
    merge_delta_object,
)
from syncd.core.records import (
    USER_STRING_PROPERTIES,
    DeltaRound,
    DirectoryGroup,
    DirectoryUser,
    Entry,
    GroupSnapshot,
    Presence,
    Problem,
    UserSnapshot,
)
from syncd.core.snapshot import FullUserRound, fold_groups, fold_users
from syncd.credentials import Secret
from syncd.errors import GraphReadError, SyncdError
from syncd.fakes._http import LoopbackServer, Response
from tests.fuzz_strategies import (
    ORIGIN,
    Reply,
    ScriptedServer,
    graph_objects,
    graph_replies,
    graph_users,
    scim_replies,
)

# -- what well-typed means -------------------------------------------------------------------


def sendable(value: object, *, empty: bool = False) -> bool:
    """A str that can go into a URL, a request body and SQLite (valid Unicode)."""
    if not isinstance(value, str) or (not value and not empty):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_problem(problem: object) -> None:
    assert isinstance(problem, Problem)
    assert sendable(problem.object_id)
    assert sendable(problem.field)
    assert sendable(problem.message)
    assert problem.severity in ("warning", "error")
    str(problem)


def check_user(user: object) -> None:
    assert isinstance(user, DirectoryUser)
    assert sendable(user.id)
    properties = user.properties
    assert set(properties) <= set(USER_STRING_PROPERTIES)
    assert all(sendable(v) and len(v) <= MAX_VALUE_LENGTH for v in properties.values())
    assert "@" in user.user_principal_name
    assert isinstance(user.account_enabled, bool)
    assert isinstance(user.business_phones, tuple)
    assert all(sendable(p) for p in user.business_phones)
    assert user.manager_id is None or sendable(user.manager_id)
    assert all(isinstance(k, str) for k in user.extra)
    # The snapshot's stored form is strict JSON and gives the same record back.
    stored = json.dumps(user.to_json(), allow_nan=False)
    assert DirectoryUser.from_json(json.loads(stored)) == user


def check_group(group: object) -> None:
    assert isinstance(group, DirectoryGroup)
    assert sendable(group.id)
    assert sendable(group.display_name)
    assert len(group.display_name) <= MAX_VALUE_LENGTH
    for members in (group.user_members, group.group_members):
        assert isinstance(members, frozenset)
        assert all(sendable(m) for m in members)
    assert group.id not in group.group_members
    stored = json.dumps(group.to_json(), allow_nan=False)
    assert DirectoryGroup.from_json(json.loads(stored)) == group


def check_decoded(decoded: object) -> None:
    assert isinstance(decoded, Decoded)
    for problem in decoded.problems:
        check_problem(problem)
    if decoded.user is not None:
        check_user(decoded.user)
    else:
        assert any(p.severity == "error" for p in decoded.problems)


def check_snapshots(users: UserSnapshot, groups: GroupSnapshot) -> None:
    for snapshot, check in ((users, check_user), (groups, check_group)):
        for object_id, entry in snapshot.items():
            assert isinstance(entry, Entry)
            assert isinstance(entry.presence, Presence)
            check(entry.record)
            assert entry.record.id == object_id


def check_round(result: object) -> None:
    assert isinstance(result, DeltaRound)
    assert isinstance(result.delta_link, str)
    assert isinstance(result.pages, int)
    assert result.pages >= 0
    assert result.error is None or isinstance(result.error, GraphReadError)
    assert set(result.removed.values()) <= {Presence.RECYCLED, Presence.DELETED}
    assert not set(result.removed) & set(result.objects)
    for object_id, obj in result.objects.items():
        assert sendable(object_id)
        assert isinstance(obj, dict)
        assert obj["id"] == object_id
        members = obj.get("members@delta", [])
        assert isinstance(members, list)
        for kind, member_id, was_removed in members:
            assert isinstance(kind, str)
            assert sendable(member_id)
            assert isinstance(was_removed, bool)


# -- the pure decoders -----------------------------------------------------------------------

BASE = DirectoryUser(
    "u1", {"userPrincipalName": "anna@contoso.example", "displayName": "Anna"}, manager_id="u2"
)
PREVIOUS_USERS: UserSnapshot = {
    "u1": Entry(BASE, Presence.PRESENT),
    "u2": Entry(
        DirectoryUser("u2", {"userPrincipalName": "bo@contoso.example"}), Presence.RECYCLED
    ),
}
PREVIOUS_GROUPS: GroupSnapshot = {
    "g1": Entry(DirectoryGroup("g1", "Sales", frozenset({"u1"})), Presence.PRESENT),
    "g2": Entry(DirectoryGroup("g2", "All", frozenset(), frozenset({"g1"})), Presence.PRESENT),
}


@given(graph_users)
@example({"id": "u1", "userPrincipalName": "anna@contoso.example", "employeeType": [[[1]]]})
@example({"id": "\ud800"})  # found: a lone surrogate (a valid JSON escape) as the id, kept
@example({"id": "u9", "manager": {"id": "\udfff"}, "userPrincipalName": "eve@contoso.example"})
def test_decoding_any_user_object_gives_a_typed_user_or_a_problem(obj: dict[str, Any]) -> None:
    check_decoded(decode_user(obj))
    check_decoded(decode_delta_user(obj, None))
    check_decoded(decode_delta_user(obj, BASE))


@given(st.lists(graph_objects, max_size=8), st.booleans())
@example([{"id": "g1", "members@delta": {"": None}}], False)  # found: fold_groups' ValueError
@example([{"id": "g1", "members@delta": None}], True)  # found: kept as the member list
@example([{"id": "g1", "members@delta": [{"id": "u1"}]}, {"id": "g1", "members@delta": 5}], True)
@example([{"id": "g1", "displayName": "Sales", "members@delta": [{"id": "\ud800"}]}], False)
def test_folding_any_delta_objects_gives_typed_records(objects: list[Any], full: bool) -> None:
    result = DeltaRound()
    for obj in objects:
        merge_delta_object(result, obj)
    check_round(result)
    users = fold_users(PREVIOUS_USERS, result.objects, result.removed)
    groups = fold_groups(PREVIOUS_GROUPS, result.objects, result.removed, full=full)
    for problem in [*users.problems, *groups.problems]:
        check_problem(problem)
    check_snapshots(users.snapshot, groups.snapshot)
    streamed = FullUserRound()
    for obj in objects:
        if isinstance(obj, dict):  # GraphSource hands the full round dicts only
            streamed.add(obj)
    for problem in streamed.problems:
        check_problem(problem)
    check_snapshots(streamed.finish(PREVIOUS_USERS, complete=full), {})


# -- over HTTP: the scripted server ----------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    """The scripted server, and a proxy that catches any request meant for another host."""
    strays: list[str] = []

    def stray(request: Any) -> Response:
        strays.append(f"{request.method} {request.headers.get('host')}{request.path}")
        return Response(502)

    proxy = LoopbackServer(stray)
    proxy.start()
    scripted = ScriptedServer().start()
    with pytest.MonkeyPatch.context() as patch:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            patch.setenv(name, proxy.origin)
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")
        patch.setenv("SYNCD_GRAPH_ACCESS_TOKEN", "graph-fuzz-token")
        yield scripted
    scripted.stop()
    proxy.stop()
    assert not strays, f"requests left loopback: {strays[:5]}"


@pytest.fixture(scope="module")
def config(server: ScriptedServer) -> Config:
    return parse_config(
        {
            "graph": {
                "tenant_id": "fuzz",
                "auth": "access_token",
                "base_url": f"{server.origin}/v1.0",
            },
            "learnster": {"tenant_url": f"{server.origin}/scim"},
        }
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    opened = Store(str(tmp_path_factory.mktemp("fuzz") / "state.db"))
    yield opened
    opened.close()


def outcome(call: Awaitable[Any]) -> Any:
    """What the call returns, or None when it raised one of syncd's errors; anything else
    raised fails the example."""
    try:
        return asyncio.run(call)  # type: ignore[arg-type]
    except SyncdError:
        return None


# -- Graph -----------------------------------------------------------------------------------


def _page_with(member: bytes) -> bytes:
    """A last users page of one user who has ``member`` too."""
    user = b'{"id": "u9", "userPrincipalName": "eve@contoso.example", ' + member + b"}"
    return b'{"value": [' + user + b'], "@odata.deltaLink": "' + ORIGIN.encode() + b'/next"}'


def _linking(link: str, key: str = "@odata.nextLink") -> list[Reply]:
    """A page with no objects that links on with ``link``."""
    return [Reply(200, json.dumps({"value": [], key: link}).encode())]


END_PAGE = Reply(200, json.dumps({"value": [], "@odata.deltaLink": f"{ORIGIN}/end"}).encode())


async def _delta(
    config: Config, resource: str, link: str | None, streamed: FullUserRound | None
) -> DeltaRound:
    source = GraphSource(config)
    try:
        on_object = streamed.add if streamed is not None else None
        return await source.delta(resource, link, on_object)
    finally:
        await source.aclose()


@given(
    script=st.lists(graph_replies, min_size=1, max_size=6),
    resource=st.sampled_from(["users", "groups"]),
    follow_link=st.booleans(),
    stream=st.booleans(),
)
@example(  # found: a body that is not the gzip its Content-Encoding says (httpx.DecodingError)
    script=[Reply(200, b"{}", (("Content-Encoding", "gzip"),))],
    resource="users",
    follow_link=False,
    stream=False,
)
@example(  # found: NaN read as a float SQLite's JSON cannot hold (sqlite3.OperationalError)
    script=[Reply(200, _page_with(b'"employeeType": NaN'))],
    resource="users",
    follow_link=False,
    stream=True,
)
@example(  # found: 1e400 read as infinity, the same
    script=[Reply(200, _page_with(b'"onPremisesExtensionAttributes": {"x": 1e400}'))],
    resource="users",
    follow_link=True,
    stream=False,
)
@example(  # found: a redirect the SDK refuses to follow raises a bare Exception
    script=[Reply(302, b"", (("Location", "ftp://x/"),))],
    resource="users",
    follow_link=False,
    stream=True,
)
@example(  # and too many redirects its RedirectError
    script=[Reply(307, b"", (("Location", f"{ORIGIN}/v1.0/again"),))] * 7,
    resource="groups",
    follow_link=False,
    stream=False,
)
@example(  # found: next links that are no URL raised httpx.InvalidURL
    script=_linking(f"{ORIGIN}/\x00"), resource="users", follow_link=False, stream=False
)
@example(  # ValueError
    script=_linking(f"{ORIGIN}:99999/x"), resource="users", follow_link=False, stream=True
)
@example(script=_linking("http://["), resource="groups", follow_link=True, stream=False)
@example(  # UnicodeEncodeError
    script=_linking("\ud800"), resource="groups", follow_link=False, stream=False
)
@example(  # found: a deltaLink SQLite cannot store
    script=_linking("\ud800", "@odata.deltaLink"),
    resource="users",
    follow_link=True,
    stream=False,
)
@example(  # found: deeper than json's recursion limit (RecursionError)
    script=[Reply(200, b"[" * 100_000 + b"]" * 100_000)],
    resource="groups",
    follow_link=True,
    stream=False,
)
def test_graph_delta_read_gives_a_round_or_a_syncd_error(
    server: ScriptedServer,
    config: Config,
    store: Store,
    script: list[Reply],
    resource: str,
    follow_link: bool,
    stream: bool,
) -> None:
    server.play(script, END_PAGE)
    link = f"{server.origin}/v1.0/{resource}/delta?$deltatoken=fuzz" if follow_link else None
    streamed = FullUserRound() if stream and resource == "users" else None
    result = outcome(_delta(config, resource, link, streamed))
    if result is None:
        return
    check_round(result)
    assert sendable(result.delta_link, empty=True)
    # Folded and stored as the read stage does: the records are typed and SQLite keeps them.
    if streamed is not None:
        users = streamed.finish(PREVIOUS_USERS, complete=result.complete)
    elif resource == "users":
        users = fold_users(PREVIOUS_USERS, result.objects, result.removed).snapshot
    else:
        users = {}
    groups = (
        fold_groups(PREVIOUS_GROUPS, result.objects, result.removed, full=link is None).snapshot
        if resource == "groups"
        else {}
    )
    check_snapshots(users, groups)
    links = {resource: result.delta_link} if result.complete else {}
    store.snapshot.forget_delta_links()  # the last example's
    store.snapshot.replace(users, groups, links, full_read_at=None)
    assert store.snapshot.load() == (users, groups)
    assert store.snapshot.delta_links() == links


# -- SCIM: the pure reply handling -----------------------------------------------------------


def _response(reply: Reply) -> httpx.Response:
    """The response as the sink hands it over: read, and decompressed by httpx."""
    rendered = reply.render("http://127.0.0.1")
    headers = {k: v for k, v in rendered.headers.items() if k != "Content-Encoding"}
    request = httpx.Request("GET", "http://127.0.0.1/scim/Users")
    return httpx.Response(rendered.status, headers=headers, content=rendered.body, request=request)


def check_resource(resource: object) -> None:
    assert isinstance(resource, dict)
    assert sendable(resource.get("id"))


@given(scim_replies)
@example(  # found: response.text raises for a charset the body does not match
    Reply(400, b"{", (("Content-Type", "application/json; charset=utf-16"),))
)
@example(Reply(200, b'{"Resources": [{"id": "\\ud800"}]}'))  # found: a lone surrogate id
@example(Reply(201, b'{"id": "' + b"[" * 100_000))  # found: RecursionError from response.json()
def test_reply_handling_gives_typed_values_or_syncd_errors(reply: Reply) -> None:
    response = _response(reply)
    assert isinstance(classify("GET", "/Users", response), SyncdError)
    for read in (lambda r: [resource_of("GET", "/Users/s1", r)], lambda r: list_resources("x", r)):
        try:
            resources = read(response)
        except SyncdError:
            continue
        assert isinstance(resources, list)
        for resource in resources:
            check_resource(resource)


# -- SCIM: the sink over HTTP ----------------------------------------------------------------

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
_LISTED = (
    b'{"id": "s1", "externalId": "g1", "userName": "anna@contoso.example",'
    b' "emails": [{"type": "work", "value": "anna@contoso.example"}]}'
)
PAGE_LIMIT = 40  # requests one list read may make of a server that answers every page alike
EMPTY_LIST = Reply(200, b'{"Resources": [], "totalResults": 0}', (("Content-Type", "x"),))


def check_resources(found: object) -> None:
    assert isinstance(found, list)
    for resource in found:
        check_resource(resource)
    assert len({r["id"] for r in found}) == len(found)


async def _listed(pages: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [resource async for resource in pages]


CALLS = [
    "check",
    "create_group",
    "create_user",
    "find_groups",
    "find_user",
    "find_users_by_email",
    "get_user",
    "group_members",
    "iter_groups",
    "iter_users",
    "patch_user",
]


async def _call(sink: ScimSink, call: str) -> None:
    """One of the sink's calls; what it returns must be well typed."""
    if call == "check":
        assert await sink.check("syncd-probe-0000@example.invalid") is None
    elif call == "create_group":
        check_resource(await sink.create_group({"displayName": "Sales", "externalId": "g1"}))
    elif call == "create_user":
        check_resource(await sink.create_user({"schemas": [CORE], "userName": "a@b.example"}))
    elif call == "find_groups":
        check_resources(await sink.find_groups("g1"))
    elif call == "find_user":
        found = await sink.find_user("anna@contoso.example")
        assert found is None or check_resource(found) is None
    elif call == "find_users_by_email":
        check_resources(await sink.find_users_by_email("anna@contoso.example"))
    elif call == "get_user":
        check_resource(await sink.get_user("s1"))
    elif call == "group_members":
        found = await sink.group_members("s1")
        assert isinstance(found, list)
        assert all(sendable(m) for m in found)
    elif call == "iter_groups":
        check_resources(await _listed(sink.iter_groups(page_size=3)))
    elif call == "iter_users":
        check_resources(await _listed(sink.iter_users(page_size=3)))
    else:
        operations = [{"op": "replace", "path": "title", "value": "CEO"}]
        assert await sink.patch_user("s1", operations) is None


async def _sink_call(origin: str, call: str, attempts: int) -> None:
    sink = ScimSink(
        f"{origin}/scim",
        Secret("learnster-fuzz-token"),
        max_attempts=attempts,
        backoff_base=0.001,
        max_retry_seconds=2.0,
        timeout_seconds=10.0,
    )
    async with sink:
        with contextlib.suppress(SyncdError):
            await _call(sink, call)


@pytest.mark.parametrize("call", CALLS)
@given(reply=scim_replies)
# found: a server that ignores startIndex (every page the first, full) was read for ever
@example(Reply(200, b'{"Resources": [{"id": "s1"}, {"id": "s2"}, {"id": "s3"}]}'))
@example(
    Reply(200, b'{"totalResults": 0, "Resources": [{"id": "s1"}, {"id": "s1"}, {"id": "s1"}]}')
)
# found: one resource listed twice came back twice (two matches of one user)
@example(Reply(200, b'{"Resources": [%s, %s]}' % (_LISTED, _LISTED)))
# found: a member value that is a lone surrogate, kept (SQLite cannot bind it)
@example(Reply(200, b'{"id": "s1", "members": [{"value": "\\ud800"}]}'))
# found: httpx.DecodingError (a body that is not the gzip it says) passed through
@example(Reply(201, b'{"id": "s1"}', (("Content-Encoding", "gzip"),)))
# found: OverflowError from int() of an infinite totalResults
@example(Reply(200, b'{"Resources": [{"id": "s1"}], "totalResults": Infinity}'))
@example(Reply(200, b"[" * 100_000))  # found: RecursionError from response.json()
def test_sink_calls_give_typed_values_or_syncd_errors(
    server: ScriptedServer, call: str, reply: Reply
) -> None:
    # Every request gets the example's answer (every page of a list alike); a retry only
    # when it would not wait (Retry-After may ask for minutes).
    server.play([], reply, limit=PAGE_LIMIT, stop=EMPTY_LIST)
    wait = parse_retry_after(dict(reply.headers).get("Retry-After"))
    asyncio.run(_sink_call(server.origin, call, 1 if wait else 2))
    assert len(server.requests) <= PAGE_LIMIT, f"{call} kept asking: {len(server.requests)}"
