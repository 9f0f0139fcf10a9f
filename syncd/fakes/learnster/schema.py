"""The SCIM schemas of the fake Learnster: URNs, attribute definitions, User and Group."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from syncd.fakes.scim_filter import AttrPath, FilterError

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
