"""The SCIM sink's transport: Retry-After, throttling, PATCH answers, proxies, ids, limits."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from syncd.adapters.scim import ScimSink
from syncd.adapters.transport import parse_retry_after
from syncd.credentials import Secret
from syncd.fakes._http import LoopbackServer, Request, Response
from syncd.fakes.learnster import FakeLearnster
from tests.helpers import CORE, run

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        ("0.25", 0.25),
        (" 2.5 ", 2.5),
        (None, None),
        ("", None),
        ("soon", None),
        ("-4", 0.0),
        ("100000", 300.0),  # capped: a server's typo must not park syncd for a day
    ],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_http_date() -> None:
    now = time.time()
    when = format_datetime(datetime.fromtimestamp(now + 7, UTC), usegmt=True)
    waited = parse_retry_after(when, now=now)
    assert waited is not None
    assert 6 <= waited <= 7


def test_throttling_is_retried_honouring_retry_after() -> None:
    with FakeLearnster(token="t") as fake:
        fake.fail_next(2, 429, retry_after="0.3")

        async def create() -> float:
            async with ScimSink(fake.base_url, Secret("t"), backoff_base=0.01) as sink:
                started = time.monotonic()
                await sink.create_user({"schemas": [CORE], "userName": "a@x.example"})
                return time.monotonic() - started

        elapsed = run(create())
        assert isinstance(elapsed, float)
        assert elapsed >= 0.6  # two waits of Retry-After
        assert [r.status for r in fake.requests] == [429, 429, 201]


# Run in its own process, so the fake's allocations in this one are not counted.
_PATCH_PEAK = """
import asyncio, sys, tracemalloc
from syncd.credentials import Secret
from syncd.adapters.scim import ScimSink

async def main() -> None:
    async with ScimSink(sys.argv[1], Secret("t")) as sink:
        ops = [{"op": "replace", "path": "displayName", "value": "All"}]
        await sink.patch_group(sys.argv[2], ops)  # connection set up outside the measurement
        tracemalloc.start()
        await sink.patch_group(sys.argv[2], ops)
        print(tracemalloc.get_traced_memory()[1])

asyncio.run(main())
"""


def test_a_patch_answer_is_not_kept_in_memory() -> None:
    # A server that ignores excludedAttributes answers a tag PATCH with the whole tag:
    # 30,000 members at 100,000 users.
    with FakeLearnster(token="t") as fake:
        fake.patch_honours_projection = False
        members = [
            {"value": fake.add_user({"userName": f"member{i}@x.example"})} for i in range(30_000)
        ]
        tag = fake.add_group({"displayName": "Everyone", "members": members})
        done = subprocess.run(
            [sys.executable, "-c", _PATCH_PEAK, fake.base_url, tag],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        peak = int(done.stdout)
        answer = len(json.dumps(fake.groups[tag]))
        assert answer > 1_500_000
        # Read and dropped in chunks (asyncio reads up to 256 KiB at a time), never held whole:
        # holding it costs about twice its size (the chunks, then the joined body).
        assert peak < answer / 2
        assert fake.groups[tag]["displayName"] == "All"
        assert [r.method for r in fake.requests] == ["PATCH", "PATCH"]


def test_a_tag_patch_asks_for_an_answer_without_the_members() -> None:
    with FakeLearnster(token="t") as fake:
        members = [{"value": fake.add_user({"userName": f"m{i}@x.example"})} for i in range(50)]
        tag = fake.add_group({"displayName": "Everyone", "members": members})
        sizes: list[int] = []  # answer sizes: whole, without the members

        async def patch() -> None:
            async with ScimSink(fake.base_url, Secret("t")) as sink:
                ops = [{"op": "replace", "path": "displayName", "value": "All"}]
                await sink.patch_group(tag, ops)

        run(patch())
        [request] = fake.requests
        assert request.query == {"excludedAttributes": "members"}
        with httpx.Client(base_url=fake.base_url, verify=False) as client:
            for query in ("", "?excludedAttributes=members"):
                answer = client.patch(
                    f"/Groups/{tag}{query}",
                    headers={"Authorization": "Bearer t", "Content-Type": "application/scim+json"},
                    json={
                        "schemas": [PATCH],
                        "Operations": [{"op": "replace", "path": "displayName", "value": "All"}],
                    },
                )
                assert answer.status_code == 200
                sizes.append(len(answer.content))
                assert ("members" in answer.json()) == (query == "")
        assert len(fake.groups[tag]["members"]) == 50
        assert sizes[1] * 5 < sizes[0]


def test_concurrency_is_bounded_and_connections_are_kept_alive() -> None:
    with FakeLearnster(token="t", latency_ms=50) as fake:

        async def create_forty() -> float:
            async with ScimSink(fake.base_url, Secret("t"), max_concurrency=4) as sink:
                started = time.monotonic()
                await asyncio.gather(
                    *(
                        sink.create_user({"schemas": [CORE], "userName": f"u{i}@x.example"})
                        for i in range(40)
                    )
                )
                return time.monotonic() - started

        elapsed = run(create_forty())
        assert len(fake.users) == 40
        assert fake.server.peak_in_flight == 4
        assert fake.server.connections == 4  # one per slot, reused: no new one per request
        assert elapsed >= 10 * 0.05  # 40 requests, 4 at a time


def test_the_proxy_of_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP(S)_PROXY as every other HTTP client honours it; the fake plays the proxy here."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with FakeLearnster(token="t") as fake:
        origin, path = fake.base_url.split("/scim", 1)
        monkeypatch.setenv("HTTP_PROXY", origin)

        async def create() -> None:
            # .invalid never resolves: only the proxy can carry this request
            async with ScimSink(f"http://learnster.invalid/scim{path}", Secret("t")) as sink:
                await sink.create_user({"schemas": [CORE], "userName": "p@x.example"})

        run(create())
        [request] = fake.requests
        assert request.headers["host"] == "learnster.invalid"
        assert fake.user_by_username("p@x.example") is not None


@pytest.mark.parametrize(
    ("environment", "url", "expected"),
    [
        (
            {"HTTPS_PROXY": "proxy.corp:3128"},
            "https://a.learnster.com/scim",
            "http://proxy.corp:3128",
        ),
        ({"https_proxy": "http://p:8080"}, "https://a.learnster.com/scim", "http://p:8080"),
        ({"HTTPS_PROXY": "http://p:8080"}, "http://a.learnster.com/scim", None),
        ({"ALL_PROXY": "http://p:8080"}, "http://a.learnster.com/scim", "http://p:8080"),
        (
            {"HTTPS_PROXY": "http://p:8080", "NO_PROXY": ".learnster.com"},
            "https://a.learnster.com/s",
            None,
        ),
        (
            {"HTTPS_PROXY": "http://p:8080", "NO_PROXY": "other.example"},
            "https://a.learnster.com/s",
            "http://p:8080",
        ),
        ({}, "https://a.learnster.com/scim", None),
    ],
)
def test_which_proxy_the_environment_sets(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], url: str, expected: str | None
) -> None:
    from syncd.adapters.transport import environment_proxy

    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert environment_proxy(url) == expected


@pytest.mark.parametrize("scim_id", ["../Groups/g1", "u1?x=1#y", "..", "a b/ä"])
def test_an_id_from_learnster_stays_inside_its_path_segment(scim_id: str) -> None:
    """Ids are Learnster's data: one holding "/", "?" or ".." must not address another object."""
    from syncd.errors import NotFoundError

    with FakeLearnster(token="t") as fake:
        group = fake.add_group({"displayName": "Untouched"})

        async def patch() -> None:
            async with ScimSink(fake.base_url, Secret("t")) as sink:
                ops = [{"op": "replace", "path": "displayName", "value": "Hijacked"}]
                await sink.patch_user(scim_id.replace("g1", group), ops)

        with pytest.raises(NotFoundError):
            run(patch())
        [request] = fake.requests
        assert request.method == "PATCH"
        assert request.path.startswith("/Users/")
        assert request.path.count("/") == 2  # one segment under /Users
        assert fake.groups[group]["displayName"] == "Untouched"


def test_a_resource_without_an_id_is_never_addressed() -> None:
    from syncd.errors import BadResponseError

    with FakeLearnster(token="t") as fake:

        async def delete() -> None:
            async with ScimSink(fake.base_url, Secret("t")) as sink:
                await sink.delete_user("")

        with pytest.raises(BadResponseError):
            run(delete())
        assert fake.requests == []


def test_client_side_rate_limit() -> None:
    with FakeLearnster(token="t") as fake:

        async def burst() -> float:
            async with ScimSink(
                fake.base_url, Secret("t"), max_concurrency=8, max_requests_per_second=20
            ) as sink:
                started = time.monotonic()
                await asyncio.gather(*(sink.find_user(f"u{i}@x.example") for i in range(21)))
                return time.monotonic() - started

        elapsed = run(burst())
        assert isinstance(elapsed, float)
        assert elapsed >= 0.95  # 21 starts at most 20 per second, evenly spaced


class PagedUsers:
    """A SCIM Users list on loopback whose pages and totals can be made to misbehave."""

    def __init__(self, count: int, *, cap: int = 500, claims: int | None = None) -> None:
        self.users = [{"id": f"u{i:05d}", "userName": f"u{i}@x.example"} for i in range(count)]
        self.cap, self.claims = cap, claims
        self.starts: list[int] = []
        self.server = LoopbackServer(self.app)

    def app(self, req: Request) -> Response:
        start, count = int(req.query["startIndex"]), int(req.query["count"])
        self.starts.append(start)
        page = self.users[start - 1 : start - 1 + min(count, self.cap)]
        total = len(self.users) if self.claims is None else self.claims
        return Response.json({"totalResults": total, "Resources": page, "itemsPerPage": len(page)})

    def listed(self) -> list[str]:
        async def go() -> list[str]:
            url = f"{self.server.origin}/scim/v2"
            async with ScimSink(url, Secret("t"), max_concurrency=4) as sink:
                return [r["id"] async for r in sink.iter_users(page_size=100)]

        self.server.start()
        try:
            return run(go())
        finally:
            self.server.stop()


@pytest.mark.parametrize(
    ("count", "cap", "claims"),
    [
        (1234, 500, None),  # pages of 100, four at a time
        (100, 500, None),  # exactly one page
        (0, 500, None),
        (1234, 30, None),  # the server gives fewer than asked: its page length is the stride
        (1234, 500, 5000),  # a total that claims too many: the empty pages end the list
        (1234, 500, 700),  # a total that claims too few: read on while the pages are full
    ],
    ids=["waves", "one page", "empty", "server caps pages", "total too high", "total too low"],
)
def test_a_list_is_read_in_waves_of_pages_each_user_once(
    count: int, cap: int, claims: int | None
) -> None:
    server = PagedUsers(count, cap=cap, claims=claims)
    listed = server.listed()
    expected = count
    assert len(listed) == len(set(listed))
    assert sorted(listed) == [u["id"] for u in server.users][:expected]
    stride = min(100, cap)
    assert server.starts[0] == 1
    # On the first page's stride, but for one look past a short last page when the total
    # claims more than there is.
    off_grid = [s for s in server.starts if (s - 1) % stride]
    assert off_grid == ([count + 1] if claims and claims > count else [])


def test_a_page_shorter_than_the_first_makes_the_rest_read_one_by_one() -> None:
    server = PagedUsers(1000)
    original = server.app

    def uneven(req: Request) -> Response:
        if req.query["startIndex"] == "301":  # one page comes back short
            server.starts.append(301)
            page = server.users[300:350]
            return Response.json({"totalResults": 1000, "Resources": page})
        return original(req)

    server.server = LoopbackServer(uneven)
    listed = server.listed()
    assert sorted(listed) == [u["id"] for u in server.users]
    assert 351 in server.starts  # read on from where the short page ended
