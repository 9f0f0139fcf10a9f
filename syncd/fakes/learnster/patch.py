"""PATCH of the fake Learnster (RFC 7644 §3.5.2): operations, attribute paths, value filters."""

from __future__ import annotations

from typing import Any

from syncd.fakes.learnster.schema import PATCH_SCHEMA, Resource, _Attr, _Schema
from syncd.fakes.learnster.store import _Kind
from syncd.fakes.learnster.values import (
    UNSET,
    ScimFault,
    _coerce,
    _coerce_one,
    _invalid,
    _lower_keys,
    _merge_elements,
    _set_or_drop,
    _single_primary,
    _Unset,
)
from syncd.fakes.scim_filter import (
    AttrPath,
    Expr,
    FilterError,
    PatchPath,
    eq_template,
    matches,
    parse_path,
    resolve,
)


class _Patching:
    """PatchOp requests applied to copies of stored resources."""

    # ---------------------------------------------------------------- PATCH (RFC 7644 §3.5.2)

    def _apply_patch(self, kind: _Kind, old: Resource, body: Any) -> Resource:
        """Apply a PatchOp to a copy of ``old``; the caller validates and stores the result."""
        if not isinstance(body, dict):
            raise ScimFault(400, "the request body must be a PatchOp object", "invalidSyntax")
        low = _lower_keys(body)
        if PATCH_SCHEMA.lower() not in [str(s).lower() for s in low.get("schemas") or []]:
            raise ScimFault(400, f"schemas must contain {PATCH_SCHEMA}", "invalidSyntax")
        operations = low.get("operations")
        if not isinstance(operations, list) or not operations:
            raise ScimFault(400, "Operations must be a non-empty array", "invalidSyntax")
        # Copy-on-write: containers are copied here or replaced when modified, never mutated,
        # so a failing operation leaves the stored resource untouched (RFC 7644 §3.5.2).
        resource: Resource = {k: v for k, v in old.items() if k not in ("id", "meta")}
        for urn, _ in kind.schema.extensions.values():
            if urn in resource:
                resource[urn] = dict(resource[urn])
        for operation in operations:
            if not isinstance(operation, dict):
                raise ScimFault(400, "each operation must be an object", "invalidSyntax")
            op_fields = _lower_keys(operation)
            op = str(op_fields.get("op", "")).lower()
            if op not in ("add", "replace", "remove"):
                raise ScimFault(400, f"unsupported op {op_fields.get('op')!r}", "invalidSyntax")
            path = op_fields.get("path")
            value = op_fields.get("value")
            if path is None or path == "":
                if op == "remove":
                    raise ScimFault(400, "remove needs a path", "noTarget")
                if not isinstance(value, dict):
                    raise ScimFault(
                        400, f"{op} without a path needs an object value", "invalidSyntax"
                    )
                for key, item in value.items():
                    if str(key).lower() not in ("schemas", "id", "meta"):
                        self._patch_one(kind, resource, op, str(key), item)
            elif not isinstance(path, str):
                raise ScimFault(400, "path must be a string", "invalidPath")
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
            raise ScimFault(400, f"invalid path {path!r}: {exc}", "invalidPath") from None
        if attr.mutability == "readOnly" or (sub is not None and sub.mutability == "readOnly"):
            raise ScimFault(400, f"{path} is read-only", "mutability")
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
                raise ScimFault(400, f"{path} matches no value", "noTarget")
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
