"""The fake Learnster's store: resources and their indexes, validated under Learnster's rules."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from syncd.fakes._http import Request
from syncd.fakes.learnster.base import _LearnsterBase
from syncd.fakes.learnster.schema import E164, ENTERPRISE_SCHEMA, USER_SCHEMA, Resource, _Schema
from syncd.fakes.learnster.values import (
    ScimFault,
    _coerce,
    _content,
    _invalid,
    _now,
    _set_or_drop,
)
from syncd.fakes.scim_filter import FilterError


@dataclass(slots=True)
class _Kind:
    """The store of one resource type with its indexes."""

    schema: _Schema
    items: dict[str, Resource]
    by_name: dict[str, str] = field(default_factory=dict)  # lowercase userName/displayName
    by_external: dict[str, set[str]] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)  # creation order, for index hits


class _Store(_LearnsterBase):
    """Users and groups (tags) with the indexes that keep lookups and Learnster's rules fast."""

    users: dict[str, Resource]
    groups: dict[str, Resource]
    enforce_e164: bool
    _users: _Kind
    _groups: _Kind
    _members: dict[str, set[str]]
    _user_groups: dict[str, set[str]]
    _reports: dict[str, set[str]]
    _counter: int

    def _find(self, kind: _Kind, rid: str) -> Resource:
        resource = kind.items.get(rid)
        if resource is None:
            raise ScimFault(404, f"{kind.schema.name} {rid} not found")
        return resource

    @staticmethod
    def _check_etag(resource: Resource, request: Request) -> None:
        # RFC 7644 §3.14: a stale If-Match answers 412.
        wanted = request.headers.get("if-match")
        if wanted and wanted.strip() != "*" and resource["meta"]["version"] not in wanted:
            raise ScimFault(412, "the resource changed (If-Match does not match its version)")

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
            raise ScimFault(409, f"{kind.schema.name} id {rid} exists", "uniqueness")
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
            raise ScimFault(400, "the request body must be a JSON object", "invalidSyntax")
        schema = kind.schema
        declared = body.get("schemas")
        if require_schemas and (
            not isinstance(declared, list)
            or schema.urn.lower() not in [str(s).lower() for s in declared]
        ):
            raise ScimFault(400, f"schemas must contain {schema.urn}", "invalidSyntax")
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
        """Learnster's rules on a candidate resource; raises ScimFault, may adjust values."""
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
            raise ScimFault(409, f'userName "{user_name}" is already in use', "uniqueness")
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
