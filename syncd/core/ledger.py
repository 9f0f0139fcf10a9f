"""What Learnster acknowledged, per object: the ledger's records (its storage is an adapter's)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syncd.core.attrs import canonical_json
from syncd.core.mapping import ACTIVE


class LedgerUser:
    """What Learnster acknowledged for one user: its id and the attributes last sent.

    The attributes are kept as their canonical JSON text and parsed on demand: a ledger of
    100,000 users as dicts would cost ~150 MB, as text about a third of that.
    """

    __slots__ = ("_json", "scim_id")

    def __init__(
        self, scim_id: str, attrs: Mapping[str, Any] | None = None, *, attrs_json: str = ""
    ) -> None:
        self.scim_id = scim_id
        self._json = attrs_json or canonical_json(attrs or {})

    @property
    def attrs(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self._json)
        return parsed

    @property
    def attrs_json(self) -> str:
        return self._json

    def holds(self, attrs: Mapping[str, Any]) -> bool:
        """Whether ``attrs`` is exactly what was last acknowledged."""
        return canonical_json(attrs) == self._json

    @property
    def active(self) -> bool:
        return bool(self.attrs.get(ACTIVE, True))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, LedgerUser)
            and other.scim_id == self.scim_id
            and other._json == self._json
        )

    def __hash__(self) -> int:
        return hash((self.scim_id, self._json))

    def __repr__(self) -> str:
        return f"LedgerUser({self.scim_id!r}, attrs_json={self._json!r})"


@dataclass(frozen=True, slots=True)
class LedgerGroup:
    """What Learnster acknowledged for one group."""

    scim_id: str
    display_name: str
    members: frozenset[str] = frozenset()
