"""List parameters of the fake Learnster and attributes/excludedAttributes projection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from syncd.fakes.learnster.patch import _Patching
from syncd.fakes.learnster.schema import Resource, _Schema
from syncd.fakes.scim_filter import FilterError, parse_path

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
                    bare = _Patching._bare_extension(schema, parsed)
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
