"""Strategies and a scripted loopback server for tests/test_fuzz.py.

Arbitrary JSON, and values shaped like Graph's and Learnster's answers whose fields hold any
JSON at all; HTTP replies built from them (status, headers, body bytes, compression).
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from syncd.core.records import GROUP_TYPE, USER_SELECT, USER_STRING_PROPERTIES, USER_TYPE
from syncd.fakes._http import LoopbackServer, Request, Response

# -- arbitrary JSON --------------------------------------------------------------------------

ODD_TEXT = [
    "",
    " ",
    "\x00",
    "\ud800",
    "x\udfffy",
    "\u2028",
    "\t\r\n",
    "a\x7fb\x9f",
    "\ufeff",
    "\u202egnp.exe",
    "#EXT#",
    "é",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "null",
    "1e400",
    "x" * 300,
    "anna@contoso.example",
    "ANNA@CONTOSO.EXAMPLE",
    "anna_fabrikam.com#EXT#@contoso.example",
    "a@b",
    "+46 70 123 45 67",
]
texts = st.one_of(
    st.text(max_size=12),
    # lone surrogates (valid JSON escapes), controls, format and line-separator characters
    st.text(st.characters(categories=["Cs", "Cc", "Cf", "Zl", "Zp", "Lo"]), max_size=6),
    st.sampled_from(ODD_TEXT),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),  # NaN/Infinity are not JSON: see bodies
    texts,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)


def junk_or(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes any JSON at all."""
    return st.one_of(plausible, plausible, json_values)


# -- Graph objects ---------------------------------------------------------------------------

IDS = ["u1", "u2", "u3", "g1", "g2", " ", "\ud800", "u1\x00"]
object_ids = junk_or(st.sampled_from(IDS))
removed_marks = junk_or(
    st.fixed_dictionaries(
        {}, optional={"reason": junk_or(st.sampled_from(["changed", "deleted", ""]))}
    )
)
EXTENSION = "extension_0123456789abcdef0123456789abcdef_costCenter"
extension_attributes = st.dictionaries(
    st.sampled_from([f"extensionAttribute{n}" for n in range(1, 16)]), junk_or(texts), max_size=4
)
_user_properties: dict[str, st.SearchStrategy[Any]] = {
    name: junk_or(texts) for name in USER_STRING_PROPERTIES
}
_user_properties.update(
    {
        "id": object_ids,
        "accountEnabled": junk_or(st.sampled_from([True, False, "true", " FALSE ", "yes"])),
        "businessPhones": junk_or(st.lists(junk_or(texts), max_size=3)),
        "manager": junk_or(st.fixed_dictionaries({"id": object_ids})),
        "manager@delta": junk_or(
            st.lists(
                junk_or(
                    st.fixed_dictionaries({"id": object_ids}, optional={"@removed": removed_marks})
                ),
                max_size=3,
            )
        ),
        "@removed": removed_marks,
        "onPremisesExtensionAttributes": junk_or(extension_attributes),
        EXTENSION: json_values,
        "employeeType": junk_or(texts),
        "@odata.type": junk_or(st.just(USER_TYPE)),
    }
)
assert set(USER_SELECT) <= set(_user_properties)
graph_users = st.fixed_dictionaries({"id": _user_properties.pop("id")}, optional=_user_properties)
members = st.fixed_dictionaries(
    {"id": object_ids},
    optional={
        "@odata.type": junk_or(st.sampled_from([USER_TYPE, GROUP_TYPE, "#microsoft.graph.device"])),
        "@removed": removed_marks,
    },
)
graph_groups = st.fixed_dictionaries(
    {"id": object_ids},
    optional={
        "displayName": junk_or(texts),
        "members@delta": junk_or(st.lists(junk_or(members), max_size=5)),
        "@removed": removed_marks,
        "@odata.type": junk_or(st.just(GROUP_TYPE)),
    },
)
graph_objects = st.one_of(graph_users, graph_groups, json_values)

# Links point at the scripted server (ORIGIN, replaced when a reply is played) or hold no URL:
# nothing generated here may name another host.
ORIGIN = "http://origin.invalid"
_link_paths = st.text(st.sampled_from("abcXYZ019-._~%=&$?/"), max_size=16)
links = st.one_of(
    st.sampled_from(["", f"{ORIGIN}/v1.0/users/delta?$deltatoken=t1", "/v1.0/groups/delta?x"]),
    _link_paths.map(lambda p: f"{ORIGIN}/v1.0/{p}"),
    _link_paths.map(lambda p: f"/{p.lstrip('/')}"),
    st.sampled_from(["http://[", "\ud800", f"{ORIGIN}:99999/x", f"{ORIGIN}/\x00", "a:b"]),
    st.one_of(st.none(), st.booleans(), st.integers(), st.lists(st.integers(), max_size=2)),
)
graph_pages = junk_or(
    st.fixed_dictionaries(
        {},
        optional={
            "value": junk_or(st.lists(graph_objects, max_size=5)),
            "@odata.nextLink": links,
            "@odata.deltaLink": links,
            "@odata.context": texts,
        },
    )
)

# -- SCIM resources --------------------------------------------------------------------------

scim_ids = junk_or(st.sampled_from(["s1", "s2", "s3", "", "a/../b", "%2e", "\ud800"]))
emails = junk_or(
    st.lists(
        junk_or(
            st.fixed_dictionaries(
                {},
                optional={
                    "type": junk_or(st.sampled_from(["work", "home"])),
                    "value": junk_or(texts),
                    "primary": json_values,
                },
            )
        ),
        max_size=3,
    )
)
scim_resources = st.fixed_dictionaries(
    {"id": scim_ids},
    optional={
        "userName": junk_or(texts),
        "externalId": junk_or(st.sampled_from(["u1", "g1", "ext"])),
        "emails": emails,
        "members": junk_or(
            st.lists(junk_or(st.fixed_dictionaries({"value": junk_or(scim_ids)})), max_size=4)
        ),
        "displayName": junk_or(texts),
        "active": json_values,
        "schemas": json_values,
    },
)
scim_lists = junk_or(
    st.fixed_dictionaries(
        {},
        optional={
            "schemas": junk_or(st.just(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])),
            "totalResults": junk_or(st.integers(min_value=-2, max_value=12)),
            "startIndex": junk_or(st.integers(min_value=0, max_value=12)),
            "itemsPerPage": json_values,
            "Resources": junk_or(st.lists(junk_or(scim_resources), max_size=4)),
            "detail": json_values,
            "scimType": json_values,
        },
    )
)
scim_payloads = st.one_of(scim_lists, scim_resources)

# -- bodies and replies ----------------------------------------------------------------------

_DEEP = 100_000  # deeper than json's recursion limit, even as hypothesis raises it


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode()  # ASCII escapes: lone surrogates survive as \udXXX


def _nested(depth: int) -> bytes:
    return b'{"value": [{"id": "u1", "x": ' + b"[" * depth + b"]" * depth + b"}]}"


SPECIAL_BODIES = [
    b"",
    b"null",
    b'"a string"',
    b"[" * _DEEP + b"]" * _DEEP,
    b'{"a":' * _DEEP + b"1" + b"}" * _DEEP,
    _nested(_DEEP),
    b'{"value": [], "totalResults": 1' + b"0" * 5000 + b"}",  # over int's digit limit
    b'{"value": [{"id": "u1", "employeeType": NaN}], "@odata.deltaLink": "x"}',
    b'{"Resources": [], "totalResults": Infinity}',
    b'{"Resources": [], "totalResults": 1e400}',
    b'{"Resources": [{"id": "s1"}], "totalResults": -Infinity}',
    b"\xef\xbb\xbf{}",  # UTF-8 BOM
    '{"value": []}'.encode("utf-16"),
    b"\xff\xfe\xfd",
    b"<html><body>502 Bad Gateway</body></html>",
]


def bodies(payloads: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    encoded = payloads.map(_encode)
    return st.one_of(
        encoded,
        encoded,
        st.tuples(encoded, st.integers(min_value=0, max_value=200)).map(lambda t: t[0][: t[1]]),
        json_values.map(_encode),
        st.binary(max_size=40),
        st.sampled_from(SPECIAL_BODIES),
        st.integers(min_value=900, max_value=3000).map(_nested),
    )


@dataclass(frozen=True)
class Reply:
    """One HTTP answer of the scripted server, rendered when it is played."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    compress: str = ""  # "gzip" or "deflate": the body is sent compressed
    drop: bool = False  # close the connection without answering

    def render(self, origin: str) -> Response:
        body = self.body.replace(ORIGIN.encode(), origin.encode())
        if self.compress == "gzip":
            body = gzip.compress(body)
        elif self.compress == "deflate":
            body = zlib.compress(body)
        headers = {name: value.replace(ORIGIN, origin) for name, value in self.headers}
        return Response(self.status, body, headers, self.drop)


STATUSES = [200, 200, 200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 409, 410, 429, 500, 503]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/scim+json",
    "application/json; charset=utf-16",
    "application/json; charset=nonsense",
    "text/html",
    "text/plain; charset=latin-1",
    "",
]
_header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=24)
retry_afters = st.one_of(
    st.sampled_from(["0", "0.01", "-1", "nan", "inf", "1e9", "Wed, 21 Oct 2015 07:28:00 GMT"]),
    _header_text,
)
LOCATIONS = [f"{ORIGIN}/v1.0/users/delta?page=2", "/v1.0/elsewhere", "", "http://[", "ftp://x/"]
# Graph's SDK retries 429, 503 and 504 itself (seconds apart) unless Retry-After says too long.
GRAPH_RETRIED = {429, 503, 504}


@st.composite
def replies(draw: st.DrawFn, payloads: st.SearchStrategy[Any], *, graph: bool) -> Reply:
    status = draw(st.one_of(st.sampled_from(STATUSES), st.integers(min_value=200, max_value=599)))
    headers: list[tuple[str, str]] = []
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    if content_type:
        headers.append(("Content-Type", content_type))
    encoding = draw(st.sampled_from(["", "", "", "gzip", "deflate", "identity", "br", "x-junk"]))
    compress = ""
    if encoding:
        headers.append(("Content-Encoding", encoding))
        if encoding in ("gzip", "deflate") and draw(st.booleans()):
            compress = encoding  # else the body claims a compression it does not have
    if graph and status in GRAPH_RETRIED:
        headers.append(("Retry-After", "100000"))
    elif draw(st.booleans()):
        headers.append(("Retry-After", draw(retry_afters)))
    if graph and 300 <= status < 400 and draw(st.booleans()):
        headers.append(("Location", draw(st.sampled_from(LOCATIONS))))
    if draw(st.integers(min_value=0, max_value=5)) == 0:
        headers.append((draw(st.sampled_from(["X-Junk", "ETag", "Link"])), draw(_header_text)))
    drop = draw(st.integers(min_value=0, max_value=30)) == 0
    return Reply(status, draw(bodies(payloads)), tuple(headers), compress, drop)


graph_replies = replies(graph_pages, graph=True)
scim_replies = replies(scim_payloads, graph=False)


# -- the scripted server ---------------------------------------------------------------------


@dataclass
class _Script:
    replies: list[Response]
    rest: Response  # answered once the replies are used up
    limit: int  # requests after which ``rest`` is replaced by ``stop``
    stop: Response
    requests: list[Request] = field(default_factory=list)


class ScriptedServer:
    """One loopback server whose next answers each example sets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script = _Script([], Response(404), 0, Response(404))
        self._server = LoopbackServer(self._answer)

    @property
    def origin(self) -> str:
        return self._server.origin

    def start(self) -> ScriptedServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def play(
        self,
        replies: Iterable[Reply],
        rest: Reply,
        *,
        limit: int = 0,
        stop: Reply = Reply(404),
    ) -> None:
        rendered = [r.render(self.origin) for r in replies]
        with self._lock:
            self._script = _Script(
                rendered, rest.render(self.origin), limit, stop.render(self.origin)
            )

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._script.requests)

    def _answer(self, request: Request) -> Response:
        with self._lock:
            script = self._script
            script.requests.append(request)
            if script.replies:
                return script.replies.pop(0)
            if script.limit and len(script.requests) > script.limit:
                return script.stop
            return script.rest
