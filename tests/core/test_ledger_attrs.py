"""The ledger's records and the packed attribute sets: the canonical text the ledger stores,
equality, and PackedAttrs behaving as the mapping it stands for."""

from __future__ import annotations

import uuid

import pytest

from syncd.core.attrs import PackedAttrs, as_dict, canonical_json
from syncd.core.ledger import LedgerGroup, LedgerUser
from syncd.core.mapping import ACTIVE, MANAGER


def test_canonical_json_is_sorted_and_compact() -> None:
    assert canonical_json({"c": "Å", "b": [1, 2], "a": 1}) == '{"a":1,"b":[1,2],"c":"\\u00c5"}'
    assert canonical_json(PackedAttrs({"c": "Å", "b": [1, 2], "a": 1})) == canonical_json(
        {"a": 1, "b": [1, 2], "c": "Å"}
    )


def test_a_ledger_user_keeps_its_id_and_exactly_what_was_acknowledged() -> None:
    user = LedgerUser("scim-1", {"b": 2, ACTIVE: False, "a": 1})
    assert user.scim_id == "scim-1"
    assert user.attrs == {"a": 1, ACTIVE: False, "b": 2}
    assert user.attrs_json == '{"a":1,"active":false,"b":2}'
    assert not user.active
    assert user.holds({"a": 1, "b": 2, ACTIVE: False})
    assert user.holds(PackedAttrs({"a": 1, "b": 2, ACTIVE: False}))
    assert not user.holds({"a": 1, "b": 2})
    assert LedgerUser("scim-2").active
    assert LedgerUser("scim-2").attrs == {}
    assert LedgerUser("s", attrs_json='{"x":1}').attrs == {"x": 1}
    assert repr(LedgerUser("s", {"x": 1})) == "LedgerUser('s', attrs_json='{\"x\":1}')"


def test_ledger_users_are_equal_by_id_and_text() -> None:
    a = LedgerUser("s", {"x": 1})
    assert a == LedgerUser("s", {"x": 1})
    assert hash(a) == hash(LedgerUser("s", {"x": 1}))
    assert a != LedgerUser("t", {"x": 1})
    assert a != LedgerUser("s", {"x": 2})
    assert a != LedgerUser("t", {"x": 2})
    assert a != "s"
    assert len({a, LedgerUser("s", {"x": 1}), LedgerUser("t", {"x": 1})}) == 2
    assert LedgerGroup("sg", "G").members == frozenset()


KEY = "only-in-test_ledger_attrs"  # a key set no other test makes


@pytest.mark.parametrize(
    "attrs",
    [
        {KEY: 1},
        {KEY: 1, "x": "y"},
        {KEY: 1, ACTIVE: False, MANAGER: "m"},
        {KEY: 1, ACTIVE: None, MANAGER: None},
    ],
)
def test_packed_attrs_behave_as_the_mapping(attrs: dict[str, object]) -> None:
    packed = PackedAttrs(attrs)
    assert dict(packed) == attrs
    assert as_dict(packed) == attrs
    assert list(packed) == sorted(attrs)
    assert len(packed) == len(attrs)
    assert set(packed.keys()) == set(attrs)
    assert sorted(packed.items()) == sorted(attrs.items())
    assert sorted(map(str, packed.values())) == sorted(map(str, attrs.values()))
    for key in (KEY, ACTIVE, MANAGER, "absent"):
        assert (key in packed) is (key in attrs)
        if key in attrs:
            assert packed[key] == attrs[key]
            assert packed.get(key, "default") == attrs[key]
        else:
            with pytest.raises(KeyError) as missing:
                packed[key]
            assert missing.value.args == (key,)
            assert packed.get(key, "default") == "default"
    assert packed == attrs
    assert packed == PackedAttrs(dict(attrs))
    assert packed != PackedAttrs({**attrs, "other": 1})
    assert packed != {**attrs, "other": 1}
    assert packed != PackedAttrs({KEY: 2, **{k: v for k, v in attrs.items() if k != KEY}})
    assert packed != "not a mapping"
    assert repr(packed) == f"PackedAttrs({dict(sorted(attrs.items()))!r})"


def test_packed_attrs_of_different_keys_and_the_same_values_differ() -> None:
    assert PackedAttrs({"p": 1}) != PackedAttrs({"q": 1})
    assert as_dict({"p": 1}) == {"p": 1}


def test_packed_attrs_of_a_key_set_never_seen_before() -> None:
    # The sorted key tuples are shared through a registry; a new one is registered as itself.
    key = f"fresh-{uuid.uuid4()}"
    packed = PackedAttrs({key: 1, "a": 2})
    assert dict(packed) == {"a": 2, key: 1}
    assert list(packed) == ["a", key]
