"""Fake Learnster: a SCIM 2.0 service provider (RFC 7643/7644) on loopback, with Learnster's rules.

Why hand-written (and not scim2-server): benchmarks drive ~400 requests/s against 100,000 users
in one process, so the store keeps plain JSON dicts with O(1) indexes (id, lowercase userName,
tag name, externalId, memberships, manager references), validates with a small attribute table
instead of pydantic models, and serialises each response once with ``json``: 10-70 us of CPU per
user request at 100k users. scim2-models is not used at runtime (it is only a dev dependency and
``syncd demo`` runs this fake); the tests check the published schemas against it and run
scim2-tester against the server.

Learnster's documented rules, enforced here, and the scim2-tester checks they fail (the
compliance test's allow-list, ``tests/test_fake_learnster_compliance.py``):

- Phone numbers must be E.164 (``^\\+[1-9]\\d{1,14}$``); anything else is ``400 invalidValue``
  whose ``detail`` names the value. scim2-tester writes random 10-digit numbers, so for User
  these fail: object_replacement, object_query_with_attributes, object_list_with_attributes,
  search_with_attributes and check_remove_attribute (each creates a user with every attribute),
  check_add_attribute and check_replace_attribute on ``phoneNumbers``. ``enforce_e164 = False``
  lifts the rule, for conformance tools only.
- Learnster keeps only the first phone number: ``phoneNumbers`` is stored truncated to its first
  element (a PATCH adding a second number is accepted and the extra number dropped).
- Learnster's "is user active" is a yes/no field: ``active`` defaults to true, and removing it
  sets it back to true (fails scim2-tester's check_remove_attribute on ``active``).
- Groups are tags: a ``displayName`` already used by another group (case-insensitively) gets a
  numbered suffix, ``Sales (2)``, ``Sales (3)``..., instead of ``409 uniqueness``.
- Group members must be existing users (``400 invalidValue`` otherwise); nested groups are not
  tags. The manager's ``value`` must be an existing user id (``400 invalidValue``); the server
  fills in its ``$ref`` and ``displayName``. Deleting a user removes it from its tags and from
  its reports' manager.
- ``userName`` is unique case-insensitively: ``409 uniqueness`` on POST, PUT and PATCH.

Deliberate leniencies and choices (what Entra ID's provisioning expects of a target):

- A PATCH whose value-filtered path (``emails[type eq "work"].value``) matches no element creates
  the element from the filter's ``eq`` terms instead of answering ``400 noTarget``; removing a
  filtered element that is not there succeeds (idempotent member removal).
- ``op`` is case-insensitive, boolean attributes accept the strings ``"True"``/``"False"``, a PATCH
  without ``path`` may carry attribute paths as keys (``name.givenName``), ``add`` on a
  multi-valued attribute merges elements of the same ``type`` (or ``value``), ``remove`` of
  ``members`` with a value list removes those members, and a manager given as a bare id string
  is read as ``{"value": id}``.
- Unknown attributes in POST/PUT bodies are ignored; ``password`` is accepted and discarded
  (Learnster signs in through SSO); ``groups`` on a User is read-only and not returned.
- The manager's ``value`` and ``$ref`` are published ``"required": false`` as in RFC 7643
  §8.7.2's schema (scim2-models marks them required); Entra sends only the value.
- PATCH answers ``200`` with the resource, or ``204`` when ``patch_returns_204`` is set; a write
  that changes nothing keeps the version (ETag). The answer honours ``attributes`` and
  ``excludedAttributes`` (RFC 7644 §3.9) unless ``patch_honours_projection`` is False. Bulk,
  sorting and ``changePassword`` are not supported (ServiceProviderConfig says so).

Fault injection for client tests: ``fail_next``/``drop_next``/``slow_next`` script the next
authorised responses; ``fault_rate`` spreads seeded random faults over 429 (``Retry-After`` as
integer seconds, decimal seconds or an HTTP date), 500, 503, dropped connections and responses
delayed by ``slow_seconds`` (the request is still applied after the delay, as a slow real server
would). ``latency_ms`` is the time from a request's arrival to its answer: the fake's own work
runs inside it, and the wait is outside the lock, so concurrent requests overlap.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from itertools import islice
from types import TracebackType
from typing import Any, Final
from urllib.parse import unquote

from syncd.fakes._http import LoopbackServer, Request, Response, answer_after
from syncd.fakes.scim_filter import (
    And,
    AttrPath,
    Compare,
    Expr,
    FilterError,
    PatchPath,
    eq_template,
    matches,
    parse_filter,
    parse_path,
    resolve,
)

__all__ = ["FakeLearnster", "LoggedRequest", "ScimError"]

Resource = dict[str, Any]

PREFIX: Final = "/scim/v2"
CONTENT_TYPE: Final = "application/scim+json"
USER_SCHEMA: Final = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA: Final = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA: Final = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ERROR_SCHEMA: Final = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_SCHEMA: Final = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_SCHEMA: Final = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_SCHEMA: Final = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
SCHEMA_SCHEMA: Final = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_SCHEMA: Final = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SPC_SCHEMA: Final = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"

E164: Final = re.compile(r"^\+[1-9]\d{1,14}$")
DEFAULT_COUNT: Final = 100


class ScimError(Exception):
    """A SCIM error response (RFC 7644 §3.12); also raised by ``add_user``/``add_group``."""

    def __init__(
        self,
        status: int,
        detail: str,
        scim_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {scim_type or ''}: {detail}")
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = headers or {}

    def payload(self) -> dict[str, Any]:
        """The error as a SCIM ``Error`` message."""
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status)}
        if self.scim_type:
            body["scimType"] = self.scim_type
        body["detail"] = self.detail
        return body

    def response(self) -> Response:
        """The error as an HTTP response."""
        headers = {"Content-Type": CONTENT_TYPE, **self.headers}
        return Response(self.status, json.dumps(self.payload()).encode(), headers)


def _invalid(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidValue")


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the fake saw it; ``status`` is 0 when the connection was dropped."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    fault: str | None = None


# --------------------------------------------------------------------------- schema table


@dataclass(slots=True)
class _Attr:
    """One attribute definition (RFC 7643 §7), with sub-attributes keyed by lowercase name."""

    name: str
    type: str = "string"
    multi: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    description: str = ""
    canonical: tuple[str, ...] = ()
    ref_types: tuple[str, ...] = ()
    subs: dict[str, _Attr] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        """The attribute as published under ``/Schemas``."""
        doc: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi,
            "description": self.description or self.name,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": self.returned,
            "uniqueness": self.uniqueness,
        }
        if self.canonical:
            doc["canonicalValues"] = list(self.canonical)
        if self.ref_types:
            doc["referenceTypes"] = list(self.ref_types)
        if self.subs:
            doc["subAttributes"] = [sub.document() for sub in self.subs.values()]
        return doc


def _parse_spec(spec: str, *, read_only: bool = False) -> tuple[_Attr, ...]:
    """Attribute definitions from the compact table below (one attribute per line).

    ``name type [flags] [-- description]``; an indented line is a sub-attribute of the line
    above. Flags: ``multi``, ``required``, ``caseExact``, a mutability (``readOnly``,
    ``writeOnly``, ``immutable``), a ``returned`` value (``always``, ``never``), ``server``
    (uniqueness), ``canonical=a|b`` and ``ref=User|Group``.
    """
    attrs: list[_Attr] = []
    for line in spec.splitlines():
        if not line.strip():
            continue
        text, _, description = line.partition(" -- ")
        name, kind, *flags = text.split()
        attr = _Attr(name, kind, description=description.strip())
        for flag in flags:
            if flag in ("multi", "required"):
                setattr(attr, flag, True)
            elif flag == "caseExact":
                attr.case_exact = True
            elif flag in ("readOnly", "writeOnly", "immutable"):
                attr.mutability = flag
            elif flag in ("always", "never"):
                attr.returned = flag
            elif flag == "server":
                attr.uniqueness = flag
            elif flag.startswith("canonical="):
                attr.canonical = tuple(flag[10:].split("|"))
            elif flag.startswith("ref="):
                attr.ref_types = tuple(flag[4:].split("|"))
            else:
                raise ValueError(f"unknown flag {flag!r} in {line!r}")
        if read_only:
            attr.mutability = "readOnly"
        if line.startswith(" "):
            attrs[-1].subs[name.lower()] = attr
        else:
            attrs.append(attr)
    return tuple(attrs)


_COMMON: Final = _parse_spec("""
id string caseExact readOnly always server
externalId string caseExact
meta complex readOnly
  resourceType string caseExact readOnly
  created dateTime readOnly
  lastModified dateTime readOnly
  location reference caseExact readOnly ref=uri
  version string caseExact readOnly
""")


def _multi_spec(name: str, canonical: str = "", value: str = "string", note: str = "") -> str:
    value_flags = {"string": "", "reference": " caseExact ref=external", "binary": " caseExact"}
    types = f" canonical={canonical}" if canonical else ""
    return (
        f"{name} complex multi{' -- ' + note if note else ''}\n"
        f"  value {value}{value_flags[value]}\n  display string\n"
        f"  type string{types}\n  primary boolean\n"
    )


_USER_ATTRS: Final = _parse_spec(
    """
userName string required server -- Unique identifier (SSO) and primary e-mail; case-insensitive.
name complex
  formatted string
  familyName string
  givenName string
  middleName string
  honorificPrefix string
  honorificSuffix string
displayName string -- Full name.
nickName string
profileUrl reference caseExact ref=external
title string
userType string
preferredLanguage string
locale string
timezone string
active boolean
password string caseExact writeOnly never -- Accepted and discarded: Learnster uses SSO.
"""
    + _multi_spec("emails", "work|home|other")
    + _multi_spec(
        "phoneNumbers",
        "work|home|mobile|fax|pager|other",
        note="E.164 only (+46701234567); Learnster keeps only the first number.",
    )
    + _multi_spec("ims", "aim|gtalk|icq|xmpp|msn|skype|qq|yahoo")
    + _multi_spec("photos", "photo|thumbnail", value="reference")
    + """
addresses complex multi
  formatted string
  streetAddress string
  locality string
  region string
  postalCode string
  country string
  type string canonical=work|home|other
  primary boolean
groups complex multi readOnly -- Read-only, not returned: tags are managed through /Groups.
  value string caseExact readOnly
  $ref reference caseExact readOnly ref=Group
  display string readOnly
  type string readOnly canonical=direct|indirect
"""
    + _multi_spec("entitlements")
    + _multi_spec("roles")
    + _multi_spec("x509Certificates", value="binary")
)

_ENTERPRISE_ATTRS: Final = _parse_spec("""
employeeNumber string
costCenter string
organization string -- Company.
division string
department string
manager complex -- Direct manager; value must be an existing user id.
  value string caseExact -- The manager's Learnster id.
  $ref reference caseExact ref=User
  displayName string readOnly
""")

_GROUP_ATTRS: Final = _parse_spec("""
displayName string required -- Tag name; a name in use gets a numbered suffix: 'Sales (2)'.
members complex multi -- Users tagged with this tag; each must be an existing user.
  value string caseExact immutable
  $ref reference caseExact immutable ref=User|Group
  type string immutable canonical=User|Group
  display string
""")


@dataclass(slots=True)
class _Schema:
    """A resource type: core attributes (common ones included) and its extensions."""

    name: str
    endpoint: str
    urn: str
    description: str
    attrs: dict[str, _Attr]
    extensions: dict[str, tuple[str, dict[str, _Attr]]]  # lowercase URN -> (URN, attributes)

    def table(self, urn: str | None) -> dict[str, _Attr]:
        return self.attrs if urn is None else self.extensions[urn.lower()][1]

    def split_urn(self, urn: str) -> str | None:
        """Map a URN prefix to the extension it names (``None`` for the core schema)."""
        low = urn.lower()
        if low == self.urn.lower():
            return None
        if low in self.extensions:
            return self.extensions[low][0]
        raise FilterError(f"unknown schema {urn!r}")

    def lookup(self, path: AttrPath) -> tuple[str | None, _Attr]:
        """Resolve a top-level attribute to (extension URN or None, definition)."""
        if path.urn is not None:
            container = self.split_urn(path.urn)
            found = self.table(container).get(path.name.lower())
        else:
            container, found = None, self.attrs.get(path.name.lower())
            if found is None:
                # Extension attributes are accepted unqualified when unambiguous.
                for ext_urn, table in self.extensions.values():
                    if path.name.lower() in table:
                        container, found = ext_urn, table[path.name.lower()]
                        break
        if found is None:
            raise FilterError(f"unknown attribute {path.name!r}")
        return container, found

    def resolver(self, path: AttrPath, parent: AttrPath | None) -> AttrPath:
        """Resolve a filter path (see :func:`scim_filter.resolve`)."""
        if parent is not None:
            outer = self.lookup(parent)[1]
            inner = outer.subs.get(path.name.lower())
            if inner is None or path.urn is not None or path.sub is not None:
                raise FilterError(f"unknown sub-attribute {path.name!r} of {outer.name!r}")
            return AttrPath(None, inner.name, None, inner.type, inner.case_exact)
        container, attr = self.lookup(path)
        target = attr
        sub_name: str | None = None
        if path.sub is not None:
            sub = attr.subs.get(path.sub.lower())
            if sub is None:
                raise FilterError(f"unknown sub-attribute {path.sub!r} of {attr.name!r}")
            target, sub_name = sub, sub.name
        return AttrPath(container, attr.name, sub_name, target.type, target.case_exact)

    def documents(self) -> list[dict[str, Any]]:
        """Schema documents (RFC 7643 §7) for the core schema and its extensions."""
        common = {a.lower() for a in ("id", "externalId", "meta")}
        docs = [
            {
                "schemas": [SCHEMA_SCHEMA],
                "id": self.urn,
                "name": self.name,
                "description": self.description,
                "attributes": [a.document() for k, a in self.attrs.items() if k not in common],
            }
        ]
        for ext_urn, table in self.extensions.values():
            docs.append(
                {
                    "schemas": [SCHEMA_SCHEMA],
                    "id": ext_urn,
                    "name": "EnterpriseUser",
                    "description": "Enterprise User",
                    "attributes": [a.document() for a in table.values()],
                }
            )
        return docs


def _table(attrs: Iterable[_Attr]) -> dict[str, _Attr]:
    return {a.name.lower(): a for a in attrs}


USER: Final = _Schema(
    "User",
    "/Users",
    USER_SCHEMA,
    "Learnster user account",
    _table((*_COMMON, *_USER_ATTRS)),
    {ENTERPRISE_SCHEMA.lower(): (ENTERPRISE_SCHEMA, _table(_ENTERPRISE_ATTRS))},
)
GROUP: Final = _Schema(
    "Group", "/Groups", GROUP_SCHEMA, "Learnster tag", _table((*_COMMON, *_GROUP_ATTRS)), {}
)

# Schemas of the discovery resources themselves: scim2-tester expects /Schemas to list them.
_META_SCHEMAS: Final = (
    (
        RESOURCE_TYPE_SCHEMA,
        "ResourceType",
        _parse_spec(
            """
id string
name string required
description string
endpoint reference required ref=uri
schema reference required caseExact ref=uri
schemaExtensions complex multi
  schema reference required caseExact ref=uri
  required boolean required
""",
            read_only=True,
        ),
    ),
    (
        SPC_SCHEMA,
        "ServiceProviderConfig",
        _parse_spec(
            """
documentationUri reference ref=external
patch complex required
  supported boolean required
bulk complex required
  supported boolean required
  maxOperations integer required
  maxPayloadSize integer required
filter complex required
  supported boolean required
  maxResults integer required
changePassword complex required
  supported boolean required
sort complex required
  supported boolean required
etag complex required
  supported boolean required
authenticationSchemes complex multi required
  type string required canonical=oauth|oauth2|oauthbearertoken|httpbasic|httpdigest
  name string required
  description string required
  specUri reference ref=external
  documentationUri reference ref=external
  primary boolean
""",
            read_only=True,
        ),
    ),
    (
        SCHEMA_SCHEMA,
        "Schema",
        _parse_spec(
            """
id string required
name string
description string
attributes complex multi required
  name string required
  type string required
  multiValued boolean required
  description string
  required boolean
  canonicalValues string multi
  caseExact boolean
  mutability string
  returned string
  uniqueness string
  referenceTypes string multi
""",
            read_only=True,
        ),
    ),
)


# --------------------------------------------------------------------------- helpers


class _Unset:
    """Marker: the value is unassigned (null, empty) and the attribute must be left out."""


UNSET: Final = _Unset()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _copy_json(value: Any) -> Any:
    # Faster than copy.deepcopy for plain JSON data.
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value


def _content(resource: Resource) -> Resource:
    return {k: v for k, v in resource.items() if k != "meta"}


def _lower_keys(obj: dict[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in obj.items()}


def _coerce(attr: _Attr, value: Any, where: str) -> Any:
    """Validate ``value`` for ``attr`` and return it in canonical form, or ``UNSET``."""
    if value is None:
        return UNSET
    if attr.multi:
        if not isinstance(value, list):
            raise _invalid(f"{where} must be an array")
        items = [c for v in value if (c := _coerce_one(attr, v, where)) is not UNSET]
        return items or UNSET
    return _coerce_one(attr, value, where)


def _coerce_one(attr: _Attr, value: Any, where: str) -> Any:
    kind = attr.type
    if kind == "complex":
        if isinstance(value, str) and not attr.multi and "value" in attr.subs:
            value = {"value": value}  # Entra's legacy form for the manager
        if not isinstance(value, dict):
            raise _invalid(f"{where} must be an object, got {json.dumps(value)}")
        out: dict[str, Any] = {}
        for key, sub_value in value.items():
            sub = attr.subs.get(str(key).lower())
            if sub is None or sub.mutability == "readOnly":
                continue
            coerced = _coerce(sub, sub_value, f"{where}.{sub.name}")
            if coerced is not UNSET:
                out[sub.name] = coerced
        return out or UNSET
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"  # Entra sends "True"/"False"
    elif kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind == "decimal":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    elif isinstance(value, str):
        return value
    raise _invalid(f"{where} must be a {kind}, got {json.dumps(value)}")


def _set_or_drop(container: dict[str, Any], key: str, value: Any) -> None:
    if value is UNSET:
        container.pop(key, None)
    else:
        container[key] = value


def _merge_elements(existing: list[Any], new_items: list[Any], attr: _Attr) -> list[Any]:
    """RFC 7644 §3.5.2.1 ``add`` to a multi-valued attribute, merging by ``type`` or ``value``.

    Indexed by value and type so adding a batch to a tag with thousands of members stays linear.
    """
    if attr.name == "members":
        # Members are merged by value in _group_rules, which keeps the first of duplicates.
        return [*existing, *new_items]
    result = list(existing)
    by_type = "type" in attr.subs
    values: dict[Any, int] = {}
    types: dict[str, int] = {}

    def remember(i: int, element: Any) -> None:
        if isinstance(element, dict):
            if isinstance(element.get("value"), str):
                values.setdefault(element["value"], i)
            if by_type and isinstance(element.get("type"), str):
                types.setdefault(element["type"].lower(), i)

    for i, element in enumerate(result):
        remember(i, element)
    for item in new_items:
        hit: int | None = None
        if isinstance(item, dict):
            kind, value = item.get("type"), item.get("value")
            if by_type and isinstance(kind, str) and kind.lower() in types:
                hit = types[kind.lower()]
            elif isinstance(value, str) and value in values:
                hit = values[value]
        if hit is None:
            if item in result:
                continue  # identical values are not added twice
            result.append(item)
            hit = len(result) - 1
        else:
            result[hit] = {**result[hit], **item}
        remember(hit, result[hit])
        _single_primary(result, result[hit])
    return result


def _single_primary(items: list[Any], chosen: Any) -> None:
    # RFC 7644 §3.5.2: setting "primary" true on one value sets it false on the others.
    if not (isinstance(chosen, dict) and chosen.get("primary") is True):
        return
    for i, other in enumerate(items):
        if other is not chosen and isinstance(other, dict) and other.get("primary") is True:
            items[i] = {**other, "primary": False}


@dataclass(slots=True)
class _Fault:
    kind: str  # "status", "drop" or "slow"
    remaining: int = 1
    status: int = 503
    retry_after: str | None = None
    seconds: float = 0.0
    label: str = ""


@dataclass(slots=True)
class _Kind:
    """The store of one resource type with its indexes."""

    schema: _Schema
    items: dict[str, Resource]
    by_name: dict[str, str] = field(default_factory=dict)  # lowercase userName/displayName
    by_external: dict[str, set[str]] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)  # creation order, for index hits


# --------------------------------------------------------------------------- the fake


class FakeLearnster:
    """Learnster's SCIM 2.0 endpoint on 127.0.0.1, for tests, demos and benchmarks.

    The socket is bound on construction (so ``base_url`` is known before ``start``); ``start``
    serves in a background thread. ``users``/``groups`` map ids to the stored resources exactly
    as served (read them, do not mutate them); ``requests`` logs every request.
    """

    def __init__(
        self,
        *,
        token: str = "learnster-token",  # noqa: S107 - a fake's well-known test token
        port: int = 0,
        latency_ms: float = 0.0,
        fault_rate: float = 0.0,
        seed: int = 0,
        page_size_max: int = 1000,
    ) -> None:
        self.token = token
        self.page_size_max = page_size_max
        self._settings = (latency_ms, fault_rate, seed)
        self.users: dict[str, Resource] = {}
        self.groups: dict[str, Resource] = {}
        self.requests: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._scripted: deque[_Fault] = deque()
        self._rejections: dict[str, ScimError] = {}
        self._users = _Kind(USER, self.users)
        self._groups = _Kind(GROUP, self.groups)
        self._members: dict[str, set[str]] = {}  # group id -> user ids
        self._user_groups: dict[str, set[str]] = {}  # user id -> group ids
        self._reports: dict[str, set[str]] = {}  # manager id -> user ids
        self._counter = 0
        self._configure()
        self._server = LoopbackServer(self._app, port=port)
        self.base_url = f"{self._server.origin}{PREFIX}"
        self._discovery = self._build_discovery()
        self._running = False

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> FakeLearnster:
        """Serve in a background thread; returns ``self``."""
        if not self._running:
            self._server.start()
            self._running = True
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (also for a fake that was never started)."""
        self._running = False
        self._server.stop()

    @property
    def server(self) -> LoopbackServer:
        """The HTTP server (its ``connections`` and ``peak_in_flight`` counts)."""
        return self._server

    def __enter__(self) -> FakeLearnster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _configure(self) -> None:
        latency_ms, fault_rate, seed = self._settings
        self.latency_ms = latency_ms
        self.fault_rate = fault_rate
        self._rng = random.Random(seed)
        # How long a "slow" fault delays its response: longer than the client's timeout.
        self.slow_seconds = 5.0
        # Base of the Retry-After values random 429/503s carry.
        self.retry_after_seconds = 1.0
        self.patch_returns_204 = False
        self.patch_honours_projection = True  # False: PATCH answers the whole resource anyway
        self.enforce_e164 = True
        self.log_requests = True

    # ---------------------------------------------------------------- test helpers

    def reset(self) -> None:
        """Forget every resource, the log, rejections and scripted faults, and restore the
        constructor's settings: one running fake can serve many tests."""
        with self._lock:
            for kind in (self._users, self._groups):
                kind.items.clear()
                kind.by_name.clear()
                kind.by_external.clear()
                kind.seq.clear()
            for index in (self._members, self._user_groups, self._reports, self._rejections):
                index.clear()
            self._scripted.clear()
            self.requests.clear()
            self._configure()

    def add_user(self, resource: dict[str, Any]) -> str:
        """Store a user as if someone else had created it (brownfield); returns its id.

        The same rules as a POST apply (raises :class:`ScimError`); an ``id`` in ``resource``
        is kept, so tests can choose ids.
        """
        with self._lock:
            return str(self._create(self._users, resource, require_schemas=False)["id"])

    def add_group(self, resource: dict[str, Any]) -> str:
        """Store a group (tag) as if someone else had created it; returns its id."""
        with self._lock:
            return str(self._create(self._groups, resource, require_schemas=False)["id"])

    def user_by_username(self, user_name: str) -> Resource | None:
        """The stored user whose userName matches case-insensitively, else ``None``."""
        with self._lock:
            uid = self._users.by_name.get(user_name.lower())
            return None if uid is None else self.users[uid]

    def group_by_external_id(self, external_id: str) -> Resource | None:
        """The first stored group with this ``externalId``, else ``None``."""
        with self._lock:
            ids = self._groups.by_external.get(external_id)
            if not ids:
                return None
            return self.groups[min(ids, key=self._groups.seq.__getitem__)]

    def reject(
        self,
        user_name: str,
        status: int = 400,
        detail: str = "Learnster rejected this user",
        scim_type: str | None = "invalidValue",
    ) -> None:
        """Answer any write (POST/PUT/PATCH/DELETE) for this userName with this error."""
        with self._lock:
            self._rejections[user_name.lower()] = ScimError(status, detail, scim_type)

    def clear_rejections(self) -> None:
        """Forget every ``reject``."""
        with self._lock:
            self._rejections.clear()

    def fail_next(
        self, n: int = 1, status: int = 503, retry_after: float | str | None = None
    ) -> None:
        """Answer the next ``n`` authorised requests with ``status`` (and ``Retry-After``)."""
        header = None if retry_after is None else self._retry_after_text(retry_after)
        with self._lock:
            self._scripted.append(_Fault("status", n, status, header, label=f"scripted {status}"))

    def drop_next(self, n: int = 1) -> None:
        """Close the connection without answering the next ``n`` authorised requests."""
        with self._lock:
            self._scripted.append(_Fault("drop", n, label="scripted drop"))

    def slow_next(self, n: int = 1, seconds: float | None = None) -> None:
        """Delay the next ``n`` authorised requests by ``seconds`` (default ``slow_seconds``)."""
        delay = self.slow_seconds if seconds is None else seconds
        with self._lock:
            self._scripted.append(_Fault("slow", n, seconds=delay, label="scripted slow"))

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self._lock:
            self.requests.clear()

    # ---------------------------------------------------------------- HTTP entry point

    def _app(self, request: Request) -> Response:
        path = request.path
        rel = path[len(PREFIX) :] if path == PREFIX or path.startswith(PREFIX + "/") else None
        try:
            body: Any = json.loads(request.body) if request.body else None
            body_ok = True
        except ValueError:
            body, body_ok = None, False
        fault: _Fault | None = None
        try:
            if not self._authorized(request):
                raise ScimError(
                    401, "missing or invalid bearer token", None, {"WWW-Authenticate": "Bearer"}
                )
            fault = self._next_fault()
            if fault is not None and fault.kind == "drop":
                response = Response(drop=True)
            elif fault is not None and fault.kind == "status":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                raise ScimError(fault.status, f"injected fault ({fault.label})", None, headers)
            else:
                if fault is not None:
                    time.sleep(fault.seconds)
                if rel is None:
                    raise ScimError(404, f"no SCIM endpoint at {path}")
                if not body_ok:
                    raise ScimError(400, "request body is not valid JSON", "invalidSyntax")
                response = self._route(request, rel, body)
        except ScimError as exc:
            response = exc.response()
        except Exception as exc:  # a fake must answer in SCIM, whatever went wrong
            response = ScimError(500, f"fake Learnster error: {exc!r}").response()
        if self.log_requests:
            entry = LoggedRequest(
                request.method,
                rel if rel is not None else path,
                dict(request.query),
                body,
                0 if response.drop else response.status,
                request.headers,
                fault.label if fault is not None else None,
            )
            with self._lock:
                self.requests.append(entry)
        answer_after(request, self.latency_ms)
        return response

    def _authorized(self, request: Request) -> bool:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and credential.strip() == self.token

    def _retry_after_text(self, value: float | str) -> str:
        if isinstance(value, str):
            return value
        return str(int(value)) if float(value).is_integer() else f"{value:g}"

    def _next_fault(self) -> _Fault | None:
        with self._lock:
            if self._scripted:
                head = self._scripted[0]
                head.remaining -= 1
                if head.remaining <= 0:
                    self._scripted.popleft()
                return head
            if self.fault_rate <= 0 or self._rng.random() >= self.fault_rate:
                return None
            kind = self._rng.choice(("429", "500", "503", "drop", "slow"))
            if kind == "drop":
                return _Fault("drop", label="random drop")
            if kind == "slow":
                return _Fault("slow", seconds=self.slow_seconds, label="random slow")
            retry_after: str | None = None
            base = self.retry_after_seconds
            if kind == "429":
                form = self._rng.choice(("seconds", "decimal", "date"))
                if form == "seconds":
                    retry_after = str(max(1, round(base)))
                elif form == "decimal":
                    retry_after = f"{base / 2:.1f}"
                else:
                    retry_after = formatdate(time.time() + base, usegmt=True)
            elif kind == "503" and self._rng.random() < 0.5:
                retry_after = str(max(1, round(base)))
            return _Fault(
                "status", status=int(kind), retry_after=retry_after, label=f"random {kind}"
            )

    # ---------------------------------------------------------------- routing

    def _route(self, request: Request, rel: str, body: Any) -> Response:
        parts = [unquote(p) for p in rel.strip("/").split("/")] if rel.strip("/") else []
        method = request.method
        if not parts:
            raise ScimError(404, "no resource at the SCIM root")
        head = parts[0]
        if head in ("Users", "Groups"):
            kind = self._users if head == "Users" else self._groups
            if len(parts) == 1:
                if method == "GET":
                    return self._list([kind], self._query_params(request.query))
                if method == "POST":
                    return self._post(kind, body)
                raise self._not_allowed("GET, POST")
            if len(parts) == 2 and parts[1] == ".search":
                if method == "POST":
                    return self._list([kind], self._search_params(body))
                raise self._not_allowed("POST")
            if len(parts) == 2:
                rid = parts[1]
                if method == "GET":
                    return self._get(kind, rid, request)
                if method == "PUT":
                    return self._put(kind, rid, body, request)
                if method == "PATCH":
                    return self._patch(kind, rid, body, request)
                if method == "DELETE":
                    return self._delete(kind, rid, request)
                raise self._not_allowed("GET, PUT, PATCH, DELETE")
            raise ScimError(404, f"no SCIM endpoint at {rel}")
        if head == ".search" and len(parts) == 1:
            if method != "POST":
                raise self._not_allowed("POST")
            return self._list([self._users, self._groups], self._search_params(body))
        if head in ("ServiceProviderConfig", "ResourceTypes", "Schemas"):
            if method != "GET":
                raise self._not_allowed("GET")
            return self._discovery_response(parts)
        if head == "Bulk" and len(parts) == 1:
            raise ScimError(501, "bulk operations are not supported")
        raise ScimError(404, f"no SCIM endpoint at {rel}")

    @staticmethod
    def _not_allowed(allow: str) -> ScimError:
        return ScimError(405, "method not allowed on this endpoint", None, {"Allow": allow})

    @staticmethod
    def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(
            status,
            json.dumps(payload, ensure_ascii=False).encode(),
            {"Content-Type": CONTENT_TYPE, **(headers or {})},
        )

    def _resource_response(
        self, resource: Resource, status: int = 200, projection: _Projection | None = None
    ) -> Response:
        meta = resource["meta"]
        headers = {"ETag": meta["version"]}
        if status == 201:
            headers["Location"] = meta["location"]
        payload = projection.apply(resource) if projection is not None else resource
        return self._json(payload, status, headers)

    # ---------------------------------------------------------------- discovery (RFC 7644 §4)

    def _build_discovery(self) -> dict[str, Any]:
        base = self.base_url
        created = _now()

        def meta(resource_type: str, location: str) -> dict[str, str]:
            return {
                "resourceType": resource_type,
                "created": created,
                "lastModified": created,
                "location": f"{base}{location}",
            }

        schemas: dict[str, dict[str, Any]] = {}
        for schema in (USER, GROUP):
            for doc in schema.documents():
                schemas[doc["id"]] = {**doc, "meta": meta("Schema", f"/Schemas/{doc['id']}")}
        for urn, name, attrs in _META_SCHEMAS:
            schemas[urn] = {
                "schemas": [SCHEMA_SCHEMA],
                "id": urn,
                "name": name,
                "description": f"{name} (RFC 7643)",
                "attributes": [a.document() for a in attrs],
                "meta": meta("Schema", f"/Schemas/{urn}"),
            }
        resource_types = {
            "User": {
                "schemas": [RESOURCE_TYPE_SCHEMA],
                "id": "User",
                "name": "User",
                "endpoint": "/Users",
                "description": "Learnster user account",
                "schema": USER_SCHEMA,
                "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": False}],
                "meta": meta("ResourceType", "/ResourceTypes/User"),
            },
            "Group": {
                "schemas": [RESOURCE_TYPE_SCHEMA],
                "id": "Group",
                "name": "Group",
                "endpoint": "/Groups",
                "description": "Learnster tag",
                "schema": GROUP_SCHEMA,
                "meta": meta("ResourceType", "/ResourceTypes/Group"),
            },
        }
        config = {
            "schemas": [SPC_SCHEMA],
            "documentationUri": "https://support.learnster.com/",
            "patch": {"supported": True},
            "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": True, "maxResults": self.page_size_max},
            "changePassword": {"supported": False},
            "sort": {"supported": False},
            "etag": {"supported": True},
            "authenticationSchemes": [
                {
                    "type": "oauthbearertoken",
                    "name": "Secret Token",
                    "description": "The Secret Token from Learnster Studio, as a bearer token",
                    "primary": True,
                }
            ],
            "meta": meta("ServiceProviderConfig", "/ServiceProviderConfig"),
        }
        return {"schemas": schemas, "resourceTypes": resource_types, "config": config}

    def _discovery_response(self, parts: list[str]) -> Response:
        head = parts[0]
        if head == "ServiceProviderConfig":
            if len(parts) != 1:
                raise ScimError(404, "no such endpoint")
            return self._json(self._discovery["config"])
        table: dict[str, Any] = self._discovery["schemas" if head == "Schemas" else "resourceTypes"]
        if len(parts) == 1:
            items = list(table.values())
            return self._json(
                {
                    "schemas": [LIST_SCHEMA],
                    "totalResults": len(items),
                    "itemsPerPage": len(items),
                    "startIndex": 1,
                    "Resources": items,
                }
            )
        if len(parts) == 2 and parts[1] in table:
            return self._json(table[parts[1]])
        raise ScimError(404, f"{head[:-1]} {parts[-1]!r} not found")

    # ---------------------------------------------------------------- reads

    def _query_params(self, query: dict[str, str]) -> _ListParams:
        def number(name: str, default: int) -> int:
            raw = query.get(name, "")
            if raw == "":
                return default
            try:
                return int(raw)
            except ValueError:
                raise _invalid(f"{name} must be an integer, got {raw!r}") from None

        return _ListParams(
            query.get("filter") or None,
            number("startIndex", 1),
            number("count", DEFAULT_COUNT),
            _split_names(query.get("attributes")),
            _split_names(query.get("excludedAttributes")),
        )

    def _search_params(self, body: Any) -> _ListParams:
        # RFC 7644 §3.4.3: the same parameters as a GET, in a SearchRequest body.
        if not isinstance(body, dict):
            raise ScimError(400, "a SearchRequest object is required", "invalidSyntax")
        low = _lower_keys(body)
        if SEARCH_SCHEMA.lower() not in [str(s).lower() for s in low.get("schemas") or []]:
            raise ScimError(400, f"schemas must contain {SEARCH_SCHEMA}", "invalidSyntax")

        def number(name: str, default: int) -> int:
            value = low.get(name.lower(), default)
            if value is None:
                return default
            if not isinstance(value, int) or isinstance(value, bool):
                raise _invalid(f"{name} must be an integer")
            return value

        def names(name: str) -> list[str]:
            value = low.get(name.lower()) or []
            if isinstance(value, str):
                return _split_names(value)
            return [str(v) for v in value]

        flt = low.get("filter")
        return _ListParams(
            str(flt) if flt else None,
            number("startIndex", 1),
            number("count", DEFAULT_COUNT),
            names("attributes"),
            names("excludedAttributes"),
        )

    def _list(self, kinds: list[_Kind], params: _ListParams) -> Response:
        start = max(1, params.start_index)  # RFC 7644 §3.4.2.4: < 1 is read as 1
        count = min(max(0, params.count), self.page_size_max)
        plans: list[tuple[_Kind, Expr | None, _Projection | None]] = []
        problems: list[str] = []
        for kind in kinds:
            try:
                expr = self._compile(kind, params.filter) if params.filter else None
            except FilterError as exc:
                problems.append(str(exc))
                continue
            projection = _Projection.build(kind.schema, params.attributes, params.excluded)
            plans.append((kind, expr, projection))
        if not plans:
            raise ScimError(400, f"invalid filter: {problems[0]}", "invalidFilter")
        with self._lock:
            total = 0
            page: list[Any] = []
            skip = start - 1
            for kind, expr, projection in plans:
                hits, size = self._select(kind, expr)
                total += size
                if len(page) >= count:
                    continue
                if skip >= size:
                    skip -= size
                    continue
                for resource in islice(hits, skip, skip + count - len(page)):
                    page.append(projection.apply(resource) if projection else resource)
                skip = 0
            payload = {
                "schemas": [LIST_SCHEMA],
                "totalResults": total,
                "itemsPerPage": len(page),
                "startIndex": start,
                "Resources": page,
            }
            return self._json(payload)

    def _compile(self, kind: _Kind, text: str) -> Expr:
        return resolve(parse_filter(text), kind.schema.resolver)

    def _select(self, kind: _Kind, expr: Expr | None) -> tuple[Iterator[Resource], int]:
        """Matching resources in creation order, and how many there are (under the lock)."""
        if expr is None:
            return iter(kind.items.values()), len(kind.items)
        candidates = self._indexed(kind, expr)
        if candidates is None:
            found = [r for r in kind.items.values() if matches(expr, r)]
        else:
            ordered = sorted(candidates, key=kind.seq.__getitem__)
            found = [kind.items[i] for i in ordered if matches(expr, kind.items[i])]
        return iter(found), len(found)

    def _indexed(self, kind: _Kind, expr: Expr) -> set[str] | None:
        """Candidate ids from an index when the filter pins an indexed attribute, else None."""
        if isinstance(expr, And):
            left = self._indexed(kind, expr.left)
            return left if left is not None else self._indexed(kind, expr.right)
        if not (isinstance(expr, Compare) and expr.op == "eq" and isinstance(expr.value, str)):
            return None
        path = expr.path
        if path.urn is not None or path.sub is not None:
            return None
        if path.name == "id":
            return {expr.value} if expr.value in kind.items else set()
        if path.name == "externalId":
            return set(kind.by_external.get(expr.value, ()))
        if path.name == ("userName" if kind.schema is USER else "displayName"):
            hit = kind.by_name.get(expr.value.lower())
            return {hit} if hit is not None else set()
        return None

    def _get(self, kind: _Kind, rid: str, request: Request) -> Response:
        params = self._query_params(request.query)
        projection = _Projection.build(kind.schema, params.attributes, params.excluded)
        with self._lock:
            resource = self._find(kind, rid)
            # RFC 7644 §3.14: a GET whose If-None-Match holds the current version gets a 304.
            wanted = request.headers.get("if-none-match")
            if wanted and resource["meta"]["version"] in wanted:
                return Response(304, b"", {"ETag": resource["meta"]["version"]})
            return self._resource_response(resource, 200, projection)

    def _find(self, kind: _Kind, rid: str) -> Resource:
        resource = kind.items.get(rid)
        if resource is None:
            raise ScimError(404, f"{kind.schema.name} {rid} not found")
        return resource

    @staticmethod
    def _check_etag(resource: Resource, request: Request) -> None:
        # RFC 7644 §3.14: a stale If-Match answers 412.
        wanted = request.headers.get("if-match")
        if wanted and wanted.strip() != "*" and resource["meta"]["version"] not in wanted:
            raise ScimError(412, "the resource changed (If-Match does not match its version)")

    # ---------------------------------------------------------------- writes

    def _check_rejected(self, *user_names: Any) -> None:
        for name in user_names:
            if isinstance(name, str) and name.lower() in self._rejections:
                raise self._rejections[name.lower()]

    def _post(self, kind: _Kind, body: Any) -> Response:
        with self._lock:
            if kind is self._users and isinstance(body, dict):
                self._check_rejected(_lower_keys(body).get("username"))
            resource = self._create(kind, body, require_schemas=True)
            return self._resource_response(resource, 201)

    def _put(self, kind: _Kind, rid: str, body: Any, request: Request) -> Response:
        # RFC 7644 §3.5.1: replace every writable attribute with the request's.
        with self._lock:
            old = self._find(kind, rid)
            self._check_etag(old, request)
            if kind is self._users:
                new_name = _lower_keys(body).get("username") if isinstance(body, dict) else None
                self._check_rejected(old.get("userName"), new_name)
            candidate = self._normalize(kind, body, require_schemas=True)
            resource = self._update(kind, rid, old, candidate)
            return self._resource_response(resource)

    def _patch(self, kind: _Kind, rid: str, body: Any, request: Request) -> Response:
        with self._lock:
            old = self._find(kind, rid)
            self._check_etag(old, request)
            if kind is self._users:
                self._check_rejected(old.get("userName"))
            candidate = self._apply_patch(kind, old, body)
            if kind is self._users:
                self._check_rejected(candidate.get("userName"))
            resource = self._update(kind, rid, old, candidate)
            if self.patch_returns_204:
                return Response(204, b"", {"ETag": resource["meta"]["version"]})
            if not self.patch_honours_projection:
                return self._resource_response(resource)
            # RFC 7644 §3.9: attributes/excludedAttributes apply to any answer with a resource.
            params = self._query_params(request.query)
            projection = _Projection.build(kind.schema, params.attributes, params.excluded)
            return self._resource_response(resource, 200, projection)

    def _delete(self, kind: _Kind, rid: str, request: Request) -> Response:
        with self._lock:
            old = self._find(kind, rid)
            self._check_etag(old, request)
            if kind is self._users:
                self._check_rejected(old.get("userName"))
                self._delete_user(rid)
            else:
                self._unindex(kind, rid, old)
                del kind.items[rid]
                for uid in self._members.pop(rid, set()):
                    self._user_groups.get(uid, set()).discard(rid)
            return Response(204)

    def _delete_user(self, uid: str) -> None:
        # Deleting a user removes it from the tags it had and from its reports' manager.
        old = self.users[uid]
        self._unindex(self._users, uid, old)
        del self.users[uid]
        for gid in self._user_groups.pop(uid, set()):
            self._members.get(gid, set()).discard(uid)
            group = self.groups[gid]
            members = [m for m in group.get("members", []) if m.get("value") != uid]
            updated = {k: v for k, v in group.items() if k != "members"}
            if members:
                updated = {k: (members if k == "members" else v) for k, v in group.items()}
            self.groups[gid] = self._touch(updated)
        for report_id in self._reports.pop(uid, set()):
            report = self.users.get(report_id)
            if report is None:
                continue
            ext = {k: v for k, v in report.get(ENTERPRISE_SCHEMA, {}).items() if k != "manager"}
            updated = {}
            for key, value in report.items():
                if key == ENTERPRISE_SCHEMA:
                    if ext:
                        updated[key] = ext
                elif key == "schemas" and not ext:
                    updated[key] = [s for s in value if s != ENTERPRISE_SCHEMA]
                else:
                    updated[key] = value
            self.users[report_id] = self._touch(updated)

    def _touch(self, resource: Resource) -> Resource:
        meta = dict(resource["meta"])
        meta["lastModified"] = _now()
        meta["version"] = self._next_version()
        resource["meta"] = meta
        return resource

    def _next_version(self) -> str:
        self._counter += 1
        return f'W/"{self._counter}"'

    def _create(self, kind: _Kind, body: Any, *, require_schemas: bool) -> Resource:
        candidate = self._normalize(kind, body, require_schemas=require_schemas)
        forced = body.get("id") if not require_schemas and isinstance(body, dict) else None
        rid = str(forced) if forced else str(uuid.uuid4())
        if rid in kind.items:
            raise ScimError(409, f"{kind.schema.name} id {rid} exists", "uniqueness")
        candidate.pop("password", None)
        self._apply_rules(kind, rid, candidate)
        now = _now()
        resource: Resource = {"schemas": candidate.pop("schemas"), "id": rid, **candidate}
        resource["meta"] = {
            "resourceType": kind.schema.name,
            "created": now,
            "lastModified": now,
            "location": f"{self.base_url}{kind.schema.endpoint}/{rid}",
            "version": self._next_version(),
        }
        kind.seq[rid] = self._counter
        kind.items[rid] = resource
        self._index(kind, rid, resource)
        return resource

    def _update(self, kind: _Kind, rid: str, old: Resource, candidate: Resource) -> Resource:
        candidate.pop("password", None)
        self._apply_rules(kind, rid, candidate)
        resource: Resource = {"schemas": candidate.pop("schemas"), "id": rid, **candidate}
        resource.pop("meta", None)
        if resource == _content(old):
            return old  # nothing changed: same version, as an ETag should
        resource["meta"] = dict(old["meta"])
        self._touch(resource)
        self._unindex(kind, rid, old)
        kind.items[rid] = resource
        self._index(kind, rid, resource)
        return resource

    # ---------------------------------------------------------------- indexes

    def _index(self, kind: _Kind, rid: str, resource: Resource) -> None:
        name = resource.get("userName" if kind is self._users else "displayName")
        if isinstance(name, str):
            kind.by_name[name.lower()] = rid
        external = resource.get("externalId")
        if isinstance(external, str):
            kind.by_external.setdefault(external, set()).add(rid)
        if kind is self._users:
            manager = resource.get(ENTERPRISE_SCHEMA, {}).get("manager", {}).get("value")
            if manager:
                self._reports.setdefault(manager, set()).add(rid)
            return
        new = {m["value"] for m in resource.get("members", ())}
        old = self._members.get(rid, set())
        for uid in old - new:
            self._user_groups.get(uid, set()).discard(rid)
        for uid in new - old:
            self._user_groups.setdefault(uid, set()).add(rid)
        self._members[rid] = new

    def _unindex(self, kind: _Kind, rid: str, resource: Resource) -> None:
        name = resource.get("userName" if kind is self._users else "displayName")
        if isinstance(name, str) and kind.by_name.get(name.lower()) == rid:
            del kind.by_name[name.lower()]
        external = resource.get("externalId")
        if isinstance(external, str):
            ids = kind.by_external.get(external)
            if ids is not None:
                ids.discard(rid)
                if not ids:
                    del kind.by_external[external]
        if kind is self._users:
            manager = resource.get(ENTERPRISE_SCHEMA, {}).get("manager", {}).get("value")
            if manager and manager in self._reports:
                self._reports[manager].discard(rid)
        # Group memberships are diffed in _index (or dropped by the delete paths).

    # ---------------------------------------------------------------- validation

    def _normalize(self, kind: _Kind, body: Any, *, require_schemas: bool) -> Resource:
        """A request body as a canonical resource (no id/meta); RFC 7643 §2 and §3."""
        if not isinstance(body, dict):
            raise ScimError(400, "the request body must be a JSON object", "invalidSyntax")
        schema = kind.schema
        declared = body.get("schemas")
        if require_schemas and (
            not isinstance(declared, list)
            or schema.urn.lower() not in [str(s).lower() for s in declared]
        ):
            raise ScimError(400, f"schemas must contain {schema.urn}", "invalidSyntax")
        out: Resource = {"schemas": [schema.urn]}
        extensions: dict[str, dict[str, Any]] = {}
        for key, value in body.items():
            low = str(key).lower()
            if low == "schemas":
                continue
            if low in schema.extensions:
                if value is None:
                    continue
                if not isinstance(value, dict):
                    raise _invalid(f"{key} must be an object")
                ext_urn, table = schema.extensions[low]
                for sub_key, sub_value in value.items():
                    attr = table.get(str(sub_key).lower())
                    if attr is not None and attr.mutability != "readOnly":
                        target = extensions.setdefault(ext_urn, {})
                        _set_or_drop(target, attr.name, _coerce(attr, sub_value, attr.name))
                continue
            container: str | None = None
            name = key
            if low.startswith("urn:"):
                # A fully qualified attribute ("urn:...:User:manager") as a top-level key.
                cut = key.rfind(":")
                try:
                    container = schema.split_urn(key[:cut])
                except FilterError:
                    continue
                name = key[cut + 1 :]
            attr = schema.table(container).get(name.lower())
            if attr is None or attr.mutability == "readOnly":
                continue  # unknown and read-only attributes are ignored (RFC 7643 §2.2)
            target = out if container is None else extensions.setdefault(container, {})
            _set_or_drop(target, attr.name, _coerce(attr, value, attr.name))
        for ext_urn, ext in extensions.items():
            if ext:
                out[ext_urn] = ext
        return out

    def _apply_rules(self, kind: _Kind, rid: str, resource: Resource) -> None:
        """Learnster's rules on a candidate resource; raises ScimError, may adjust values."""
        ext_urns = [urn for urn, _ in kind.schema.extensions.values() if resource.get(urn)]
        for urn, _ in kind.schema.extensions.values():
            if urn in resource and not resource[urn]:
                del resource[urn]
        resource["schemas"] = [kind.schema.urn, *ext_urns]
        for key, value in resource.items():
            attr = kind.schema.attrs.get(key.lower())
            if (
                attr is not None
                and "primary" in attr.subs
                and sum(1 for v in value if v.get("primary") is True) > 1
            ):
                raise _invalid(f"{key}: more than one value is primary")
        if kind is self._users:
            self._user_rules(rid, resource)
        else:
            self._group_rules(rid, resource)

    def _user_rules(self, rid: str, resource: Resource) -> None:
        user_name = resource.get("userName")
        if not isinstance(user_name, str) or not user_name.strip():
            raise _invalid("userName is required")
        owner = self._users.by_name.get(user_name.lower())
        if owner is not None and owner != rid:
            raise ScimError(409, f'userName "{user_name}" is already in use', "uniqueness")
        resource.setdefault("active", True)
        phones = resource.get("phoneNumbers")
        if phones:
            if self.enforce_e164:
                for phone in phones:
                    number = phone.get("value")
                    if number is not None and not E164.match(number):
                        raise _invalid(
                            f'phoneNumbers: "{number}" is not an E.164 phone number '
                            "(Learnster accepts only +<country code><number>, e.g. +46701234567)"
                        )
            resource["phoneNumbers"] = phones[:1]  # Learnster keeps the first number only
        ext = resource.get(ENTERPRISE_SCHEMA)
        if ext and "manager" in ext:
            manager_id = ext["manager"].get("value")
            ext = dict(ext)
            if not manager_id:
                del ext["manager"]  # an empty manager clears it, as Entra sends it
            else:
                manager = self.users.get(manager_id)
                if manager is None:
                    raise _invalid(f'manager: "{manager_id}" is not an existing user id')
                ref: dict[str, Any] = {
                    "value": manager_id,
                    "$ref": f"{self.base_url}/Users/{manager_id}",
                }
                if manager.get("displayName"):
                    ref["displayName"] = manager["displayName"]
                ext["manager"] = ref
            if ext:
                resource[ENTERPRISE_SCHEMA] = ext
            else:
                del resource[ENTERPRISE_SCHEMA]
                resource["schemas"] = [USER_SCHEMA]

    def _group_rules(self, rid: str, resource: Resource) -> None:
        name = resource.get("displayName")
        if not isinstance(name, str) or not name.strip():
            raise _invalid("displayName is required")
        resource["displayName"] = self._tag_name(name, rid)
        members = resource.get("members")
        if members is None:
            return
        values = [m.get("value") for m in members]
        distinct = set(values)
        # Only members not already in the tag need checking: set operations, not a loop, for
        # tags with thousands of members.
        for value in distinct - self._members.get(rid, set()):
            if not isinstance(value, str) or value not in self.users:
                raise _invalid(f'members: "{value}" is not an existing user')
        if len(distinct) != len(values):
            first = dict(zip(reversed(values), reversed(members), strict=True))  # first wins
            resource["members"] = [first[v] for v in dict.fromkeys(values)]

    def _tag_name(self, name: str, rid: str) -> str:
        """``name``, or ``name (2)``, ``name (3)``...: the first not used by another tag."""
        candidate, n = name, 1
        while self._groups.by_name.get(candidate.lower(), rid) != rid:
            n += 1
            candidate = f"{name} ({n})"
        return candidate

    # ---------------------------------------------------------------- PATCH (RFC 7644 §3.5.2)

    def _apply_patch(self, kind: _Kind, old: Resource, body: Any) -> Resource:
        """Apply a PatchOp to a copy of ``old``; the caller validates and stores the result."""
        if not isinstance(body, dict):
            raise ScimError(400, "the request body must be a PatchOp object", "invalidSyntax")
        low = _lower_keys(body)
        if PATCH_SCHEMA.lower() not in [str(s).lower() for s in low.get("schemas") or []]:
            raise ScimError(400, f"schemas must contain {PATCH_SCHEMA}", "invalidSyntax")
        operations = low.get("operations")
        if not isinstance(operations, list) or not operations:
            raise ScimError(400, "Operations must be a non-empty array", "invalidSyntax")
        # Copy-on-write: containers are copied here or replaced when modified, never mutated,
        # so a failing operation leaves the stored resource untouched (RFC 7644 §3.5.2).
        resource: Resource = {k: v for k, v in old.items() if k not in ("id", "meta")}
        for urn, _ in kind.schema.extensions.values():
            if urn in resource:
                resource[urn] = dict(resource[urn])
        for operation in operations:
            if not isinstance(operation, dict):
                raise ScimError(400, "each operation must be an object", "invalidSyntax")
            op_fields = _lower_keys(operation)
            op = str(op_fields.get("op", "")).lower()
            if op not in ("add", "replace", "remove"):
                raise ScimError(400, f"unsupported op {op_fields.get('op')!r}", "invalidSyntax")
            path = op_fields.get("path")
            value = op_fields.get("value")
            if path is None or path == "":
                if op == "remove":
                    raise ScimError(400, "remove needs a path", "noTarget")
                if not isinstance(value, dict):
                    raise ScimError(
                        400, f"{op} without a path needs an object value", "invalidSyntax"
                    )
                for key, item in value.items():
                    if str(key).lower() not in ("schemas", "id", "meta"):
                        self._patch_one(kind, resource, op, str(key), item)
            elif not isinstance(path, str):
                raise ScimError(400, "path must be a string", "invalidPath")
            else:
                self._patch_one(kind, resource, op, path, value)
        return resource

    def _patch_one(self, kind: _Kind, resource: Resource, op: str, path: str, value: Any) -> None:
        schema = kind.schema
        try:
            parsed = parse_path(path)
            bare = self._bare_extension(schema, parsed)
            if bare is not None:
                self._patch_extension(kind, resource, op, bare, value)
                return
            container, attr = schema.lookup(parsed.attr)
            sub_name = parsed.attr.sub or parsed.sub
            sub = attr.subs.get(sub_name.lower()) if sub_name else None
            if sub_name and sub is None:
                raise FilterError(f"unknown sub-attribute {sub_name!r} of {attr.name!r}")
            flt = None
            if parsed.filter is not None:
                if not attr.multi:
                    raise FilterError(f"{attr.name} is not multi-valued")
                outer = AttrPath(container, attr.name)
                flt = resolve(parsed.filter, schema.resolver, outer)
        except FilterError as exc:
            raise ScimError(400, f"invalid path {path!r}: {exc}", "invalidPath") from None
        if attr.mutability == "readOnly" or (sub is not None and sub.mutability == "readOnly"):
            raise ScimError(400, f"{path} is read-only", "mutability")
        if container is None:
            target = resource
        else:
            if container not in resource:
                if op == "remove":
                    return
                resource[container] = {}
            target = resource[container]
        if flt is not None:
            self._patch_filtered(target, op, attr, flt, sub, value, path)
        elif sub is not None:
            self._patch_sub(target, op, attr, sub, value, path)
        else:
            self._patch_attr(target, op, attr, value, path)

    @staticmethod
    def _bare_extension(schema: _Schema, parsed: PatchPath) -> str | None:
        attr = parsed.attr
        if attr.urn is None or attr.sub is not None or parsed.filter is not None:
            return None
        full = f"{attr.urn}:{attr.name}".lower()
        return schema.extensions[full][0] if full in schema.extensions else None

    def _patch_extension(
        self, kind: _Kind, resource: Resource, op: str, urn: str, value: Any
    ) -> None:
        if op == "remove":
            resource.pop(urn, None)
            return
        if not isinstance(value, dict):
            raise _invalid(f"{urn} needs an object value")
        for key, item in value.items():
            if str(key).lower() != "schemas":  # an extension object may carry its schemas
                self._patch_one(kind, resource, op, f"{urn}:{key}", item)

    @staticmethod
    def _patch_attr(target: dict[str, Any], op: str, attr: _Attr, value: Any, path: str) -> None:
        name = attr.name
        if op == "remove":
            if attr.multi and isinstance(value, list) and value:
                # Entra's form: remove "members" with the values to remove.
                drop = {v.get("value") if isinstance(v, dict) else v for v in value}
                kept = [e for e in target.get(name, []) if e.get("value") not in drop]
                _set_or_drop(target, name, kept or UNSET)
            else:
                target.pop(name, None)
            return
        if attr.multi and value is not None and not isinstance(value, list):
            value = [value]  # a single element where an array is expected
        coerced = _coerce(attr, value, path)
        if coerced is UNSET:
            if op == "replace":
                target.pop(name, None)  # replace with null/[] unassigns (RFC 7643 §2.5)
            return
        if attr.multi:
            if op == "add" and target.get(name):
                coerced = _merge_elements(target[name], coerced, attr)
            else:
                for item in coerced:
                    _single_primary(coerced, item)
            target[name] = coerced
        elif attr.type == "complex" and isinstance(target.get(name), dict):
            # Sub-attributes not in the value are left unchanged (RFC 7644 §3.5.2.1/3).
            target[name] = {**target[name], **coerced}
        else:
            target[name] = coerced

    @staticmethod
    def _patch_sub(
        target: dict[str, Any], op: str, attr: _Attr, sub: _Attr, value: Any, path: str
    ) -> None:
        current = target.get(attr.name)
        coerced = UNSET if op == "remove" else _coerce(sub, value, path)
        if attr.multi:
            # "emails.value" without a filter addresses every element.
            items = list(current or [])
            if not items and coerced is not UNSET:
                items = [{}]
            updated = []
            for item in items:
                element = dict(item)
                _set_or_drop(element, sub.name, coerced)
                if element:
                    updated.append(element)
            _set_or_drop(target, attr.name, updated or UNSET)
            return
        element = dict(current) if isinstance(current, dict) else {}
        _set_or_drop(element, sub.name, coerced)
        _set_or_drop(target, attr.name, element or UNSET)

    @staticmethod
    def _patch_filtered(
        target: dict[str, Any],
        op: str,
        attr: _Attr,
        flt: Expr,
        sub: _Attr | None,
        value: Any,
        path: str,
    ) -> None:
        items = list(target.get(attr.name) or [])
        hits = [i for i, item in enumerate(items) if isinstance(item, dict) and matches(flt, item)]
        if op == "remove":
            if sub is None:
                items = [item for i, item in enumerate(items) if i not in hits]
            else:
                for i in hits:
                    items[i] = {k: v for k, v in items[i].items() if k != sub.name}
                items = [item for item in items if item]
            _set_or_drop(target, attr.name, items or UNSET)
            return
        if sub is not None:
            coerced = _coerce(sub, value, path)
            patch: dict[str, Any] | _Unset = UNSET if coerced is UNSET else {sub.name: coerced}
        else:
            patch = _coerce_one(attr, value, path) if value is not None else UNSET
        if not hits:
            if isinstance(patch, _Unset):
                return
            template = eq_template(flt)
            if template is None:
                raise ScimError(400, f"{path} matches no value", "noTarget")
            # Entra ID expects the element to be created from the filter (see module doc).
            items.append({**template, **patch})
            hits = [len(items) - 1]
        else:
            for i in hits:
                if patch is UNSET and sub is not None:
                    items[i] = {k: v for k, v in items[i].items() if k != sub.name}
                elif isinstance(patch, dict):
                    items[i] = {**items[i], **patch}
        for i in hits:
            _single_primary(items, items[i])
        _set_or_drop(target, attr.name, [item for item in items if item] or UNSET)


# --------------------------------------------------------------------------- list support


@dataclass(slots=True)
class _ListParams:
    filter: str | None
    start_index: int
    count: int
    attributes: list[str]
    excluded: list[str]


def _split_names(raw: str | None) -> list[str]:
    return [p.strip() for p in (raw or "").split(",") if p.strip()]


@dataclass(slots=True)
class _Projection:
    """``attributes``/``excludedAttributes`` (RFC 7644 §3.4.2.5), resolved once per request."""

    include: dict[tuple[str | None, str], set[str] | None] | None
    exclude: dict[tuple[str | None, str], set[str] | None]

    @classmethod
    def build(
        cls, schema: _Schema, attributes: list[str], excluded: list[str]
    ) -> _Projection | None:
        if not attributes and not excluded:
            return None

        def resolve_all(names: list[str]) -> dict[tuple[str | None, str], set[str] | None]:
            out: dict[tuple[str | None, str], set[str] | None] = {}
            for text in names:
                try:
                    parsed = parse_path(text)
                    bare = FakeLearnster._bare_extension(schema, parsed)
                    if bare is not None:
                        out[(bare, "")] = None
                        continue
                    path = schema.resolver(parsed.attr, None)
                except FilterError:
                    continue  # unknown attributes are ignored
                key = (path.urn, path.name)
                if path.sub is None:
                    out[key] = None
                elif key not in out or out[key] is not None:
                    out.setdefault(key, set()).add(path.sub)  # type: ignore[union-attr]
            return out

        return cls(resolve_all(attributes) if attributes else None, resolve_all(excluded))

    def apply(self, resource: Resource) -> Resource:
        if self.include is not None:
            out: Resource = {"schemas": resource["schemas"], "id": resource["id"]}
            for (urn, name), subs in self.include.items():
                source = resource if urn is None else resource.get(urn)
                if not isinstance(source, dict):
                    continue
                if name == "":
                    out[urn or ""] = source  # a whole extension
                    continue
                if name not in source:
                    continue
                dest = out if urn is None else out.setdefault(urn, {})
                dest[name] = _pick(source[name], subs)
            return out
        out = dict(resource)
        for (urn, name), subs in self.exclude.items():
            if name == "id":
                continue  # "returned: always"
            if urn is not None and name == "":
                out.pop(urn, None)
                continue
            holder = out if urn is None else out.get(urn)
            if not isinstance(holder, dict) or name not in holder:
                continue
            if urn is not None:
                holder = out[urn] = dict(holder)
            if subs is None:
                del holder[name]
            else:
                holder[name] = _drop(holder[name], subs)
        return out


def _pick(value: Any, subs: set[str] | None) -> Any:
    if subs is None:
        return value
    if isinstance(value, list):
        return [{k: v for k, v in e.items() if k in subs} for e in value if isinstance(e, dict)]
    return {k: v for k, v in value.items() if k in subs} if isinstance(value, dict) else value


def _drop(value: Any, subs: set[str]) -> Any:
    if isinstance(value, list):
        return [{k: v for k, v in e.items() if k not in subs} for e in value if isinstance(e, dict)]
    return {k: v for k, v in value.items() if k not in subs} if isinstance(value, dict) else value
