"""Flat attribute sets (SCIM path -> value) in the forms the planner and the ledger keep them."""

from __future__ import annotations

import json
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from typing import Any

from syncd.core.mapping import ACTIVE, MANAGER


def canonical_json(attrs: Mapping[str, Any]) -> str:
    """The one text form of a flat attribute set (how the ledger stores it)."""
    if isinstance(attrs, PackedAttrs):
        return attrs.json
    return json.dumps(attrs, sort_keys=True, separators=(",", ":"))


_ABSENT: Any = object()


class PackedAttrs(Mapping[str, Any]):
    """A read-only flat attribute set kept as one JSON array of its values.

    The targets and creates of 100,000 users as dicts cost ~150 MB; as canonical JSON ~125 MB
    (the SCIM paths are long); as values only, with the sorted keys shared between users
    with the same attributes, under half of that. ``active`` and ``manager``, which the
    planner reads for every user, stay unpacked; anything else unpacks the text, so hot paths
    call ``unpack()`` once (see ``as_dict``).
    """

    __slots__ = ("_active", "_keys", "_manager", "_values")

    def __init__(self, attrs: Mapping[str, Any]) -> None:
        keys = tuple(sorted(attrs))
        self._keys = _KEY_SETS.setdefault(keys, keys)
        self._values = json.dumps(
            [attrs[k] for k in keys], ensure_ascii=False, separators=(",", ":")
        )
        self._active = attrs.get(ACTIVE, _ABSENT)
        self._manager = attrs.get(MANAGER, _ABSENT)

    @property
    def json(self) -> str:
        """The canonical JSON text (``canonical_json``), as the ledger stores it."""
        return json.dumps(self.unpack(), sort_keys=True, separators=(",", ":"))

    def unpack(self) -> dict[str, Any]:
        return dict(zip(self._keys, json.loads(self._values), strict=True))

    def __getitem__(self, key: str) -> Any:
        fast = self._active if key == ACTIVE else self._manager if key == MANAGER else None
        if fast is _ABSENT:
            raise KeyError(key)
        return fast if fast is not None else self.unpack()[key]

    def __contains__(self, key: object) -> bool:
        if key == ACTIVE:
            return self._active is not _ABSENT
        if key == MANAGER:
            return self._manager is not _ABSENT
        return key in self.unpack()

    def __iter__(self) -> Iterator[str]:
        return iter(self.unpack())

    def __len__(self) -> int:
        return len(self.unpack())

    def keys(self) -> KeysView[str]:
        return self.unpack().keys()

    def items(self) -> ItemsView[str, Any]:
        return self.unpack().items()

    def values(self) -> ValuesView[Any]:
        return self.unpack().values()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedAttrs):
            return other._keys == self._keys and other._values == self._values
        return isinstance(other, Mapping) and self.unpack() == dict(other.items())

    __hash__ = None  # type: ignore[assignment]  # a Mapping, compared by value

    def __repr__(self) -> str:
        return f"PackedAttrs({self.unpack()!r})"


# Sorted key tuples shared by every PackedAttrs with the same attributes (a few dozen sets).
_KEY_SETS: dict[tuple[str, ...], tuple[str, ...]] = {}


def as_dict(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict of ``attrs``, unpacking PackedAttrs in one parse (``dict()`` takes one per key)."""
    return attrs.unpack() if isinstance(attrs, PackedAttrs) else dict(attrs)
