"""Tests for the seeded organisation generator."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from syncd.fakes.generator import Organisation, generate_organisation

USER_KEYS = {
    "id", "userPrincipalName", "accountEnabled", "displayName", "givenName", "surname",
    "jobTitle", "mail", "mailNickname", "officeLocation", "streetAddress", "city", "postalCode",
    "state", "country", "businessPhones", "mobilePhone", "companyName", "department",
    "employeeId", "preferredLanguage", "faxNumber", "managerId",
}  # fmt: skip
GROUP_KEYS = {
    "id", "displayName", "mailNickname", "description", "securityEnabled", "mailEnabled",
    "groupTypes", "mail", "memberIds",
}  # fmt: skip


@pytest.fixture(scope="module")
def org() -> Organisation:
    return generate_organisation(200, seed=7)


@pytest.fixture(scope="module")
def big() -> Organisation:
    return generate_organisation(20_000, seed=3, groups=400, memberships_per_user=5)


def _depths(org: Organisation) -> dict[str, int]:
    by_id = {u["id"]: u for u in org.users}
    depths: dict[str, int] = {}
    for user in org.users:
        seen: set[str] = set()
        node, depth = user, 0
        while node["managerId"] is not None:
            assert node["id"] not in seen, "manager cycle"
            seen.add(node["id"])
            node = by_id[node["managerId"]]
            depth += 1
        depths[user["id"]] = depth
    return depths


def test_same_seed_same_organisation() -> None:
    assert generate_organisation(300, seed=42) == generate_organisation(300, seed=42)


def test_different_seed_different_organisation() -> None:
    a, b = generate_organisation(50, seed=1), generate_organisation(50, seed=2)
    assert {u["id"] for u in a.users}.isdisjoint({u["id"] for u in b.users})


def test_users_are_graph_shaped(org: Organisation) -> None:
    assert len(org.users) == 200
    for user in org.users:
        assert set(user) == USER_KEYS
        assert uuid.UUID(user["id"]).version == 4
        assert isinstance(user["businessPhones"], list)
        assert len(user["businessPhones"]) <= 1
        assert isinstance(user["accountEnabled"], bool)
        local, _, domain = user["userPrincipalName"].partition("@")
        assert domain == "contoso.example"
        assert re.fullmatch(r"[a-z0-9.\-]+", local), user["userPrincipalName"]
        assert user["mailNickname"] == local
        assert user["department"]
    upns = [u["userPrincipalName"] for u in org.users]
    assert len(set(upns)) == len(upns)
    assert len({u["id"] for u in org.users}) == 200


def test_manager_tree_is_a_tree(org: Organisation) -> None:
    ids = {u["id"] for u in org.users}
    roots = [u for u in org.users if u["managerId"] is None]
    assert len(roots) == 1
    assert roots[0]["jobTitle"] == "Chief Executive Officer"
    assert all(u["managerId"] in ids for u in org.users if u["managerId"])
    depths = _depths(org)
    assert 4 <= max(depths.values()) <= 9
    reports = Counter(u["managerId"] for u in org.users if u["managerId"])
    assert max(reports.values()) <= 10
    in_range = sum(3 <= n <= 10 for n in reports.values())
    assert in_range >= len(reports) - 1  # only the last team filled may be smaller


def test_big_tree_has_no_cycles_and_stays_shallow(big: Organisation) -> None:
    assert max(_depths(big).values()) <= 14


def test_users_come_in_no_topological_order(org: Organisation) -> None:
    position = {u["id"]: i for i, u in enumerate(org.users)}
    before_manager = [
        u for u in org.users if u["managerId"] and position[u["managerId"]] > position[u["id"]]
    ]
    assert before_manager  # consumers must not rely on managers coming first


def test_realistic_mix_of_values(big: Organisation) -> None:
    users = big.users
    n = len(users)
    disabled = sum(not u["accountEnabled"] for u in users)
    assert 0.01 * n < disabled < 0.035 * n
    assert any(u["mail"] is None for u in users)
    assert any(u["mail"] and u["mail"] != u["userPrincipalName"] for u in users)
    assert any(u["jobTitle"] is None for u in users)
    assert any(not u["businessPhones"] and u["mobilePhone"] is None for u in users)
    countries = Counter(u["country"] for u in users)
    assert countries["Sweden"] > countries["SE"] > 0
    assert {"Norway", "Denmark", "Finland", "United Kingdom", "United States"} <= set(countries)
    assert any(u["state"] == "NY" for u in users)
    assert any(u["givenName"] is None and u["surname"] is None for u in users)
    assert len({u["officeLocation"] for u in users}) >= 8


def test_phone_formats(big: Organisation) -> None:
    phones = [p for u in big.users for p in u["businessPhones"]]
    phones += [u["mobilePhone"] for u in big.users if u["mobilePhone"]]
    assert any(re.fullmatch(r"\+46 8 \d{3} \d{3} \d{2}", p) for p in phones)
    assert any(re.fullmatch(r"08-\d{3} \d{3} \d{2}", p) for p in phones)
    assert any(re.fullmatch(r"07\d-\d{3} \d{2} \d{2}", p) for p in phones)
    assert any(re.fullmatch(r"\(\d{3}\) \d{3}-\d{4}", p) for p in phones)
    assert "n/a" in phones
    assert "12" in phones


def test_phones_are_mostly_valid() -> None:
    phonenumbers = pytest.importorskip("phonenumbers")
    org = generate_organisation(2000, seed=5)
    region = {"Sweden": "SE", "Norway": "NO", "Denmark": "DK", "Finland": "FI"}
    region |= {"United Kingdom": "GB", "United States": "US", "Germany": "DE"}
    valid = total = 0
    for user in org.users:
        hint = region.get(user["country"], user["country"])
        for phone in [*user["businessPhones"], user["mobilePhone"]]:
            if phone is None:
                continue
            total += 1
            with contextlib.suppress(phonenumbers.NumberParseException):
                valid += phonenumbers.is_valid_number(phonenumbers.parse(phone, hint))
    assert 0.85 < valid / total < 0.995


def test_hard_names_are_present(org: Organisation) -> None:
    names = [u["displayName"] for u in org.users]
    assert any("'" in n for n in names)
    assert any("-" in (u["surname"] or "") for u in org.users)
    assert any(any(ord(c) > 0xFFFF for c in n) for n in names)  # outside the BMP
    assert any(any(c in "åäöøæÅÄÖØÆ" for c in n) for n in names)


def test_groups_are_graph_shaped(org: Organisation) -> None:
    ids = {u["id"] for u in org.users} | {g["id"] for g in org.groups}
    assert org.groups
    for group in org.groups:
        assert set(group) == GROUP_KEYS
        assert set(group["memberIds"]) <= ids
        assert len(set(group["memberIds"])) == len(group["memberIds"])
        if group["groupTypes"] == ["Unified"]:
            assert group["mailEnabled"]
            assert not group["securityEnabled"]
            assert group["mail"]
    names = {g["displayName"] for g in org.groups}
    assert "Office Stockholm HQ" in names
    assert "All Engineering" in names
    assert len({g["mailNickname"] for g in org.groups}) == len(org.groups)


def _has_cycle(groups: list[dict[str, Any]]) -> bool:
    children = {
        g["id"]: [m for m in g["memberIds"] if m in {x["id"] for x in groups}] for g in groups
    }
    state: dict[str, int] = {}

    def visit(node: str) -> bool:
        state[node] = 1
        for child in children[node]:
            if state.get(child) == 1 or (child not in state and visit(child)):
                return True
        state[node] = 2
        return False

    return any(node not in state and visit(node) for node in children)


def test_nesting_without_cycles(org: Organisation, big: Organisation) -> None:
    group_ids = {g["id"] for g in big.groups}
    assert any(m in group_ids for g in big.groups for m in g["memberIds"])
    assert not _has_cycle(org.groups)
    assert not _has_cycle(big.groups)
    assert _has_cycle(generate_organisation(200, seed=7, cycle=True).groups)


def test_group_count_and_memberships(big: Organisation) -> None:
    assert len(big.groups) == 400
    user_ids = {u["id"] for u in big.users}
    direct = sum(1 for g in big.groups for m in g["memberIds"] if m in user_ids)
    assert 4.5 <= direct / len(big.users) <= 5.5
    assert max(len(g["memberIds"]) for g in big.groups) > 1000  # some groups need paging


def test_default_group_count_and_memberships(org: Organisation) -> None:
    user_ids = {u["id"] for u in org.users}
    direct = sum(1 for g in org.groups for m in g["memberIds"] if m in user_ids)
    assert 2.0 <= direct / len(org.users) <= 3.0
    assert 15 <= len(org.groups) <= 40


def test_few_groups_requested() -> None:
    org = generate_organisation(100, groups=3)
    assert len(org.groups) == 3
    ids = {u["id"] for u in org.users} | {g["id"] for g in org.groups}
    assert all(set(g["memberIds"]) <= ids for g in org.groups)


@pytest.mark.parametrize("size", [0, 1, 2, 5, 19])
def test_tiny_organisations(size: int) -> None:
    org = generate_organisation(size)
    assert len(org.users) == size
    assert sum(u["managerId"] is None for u in org.users) == min(size, 1)


def test_hundred_thousand_users_quickly() -> None:
    started = time.perf_counter()
    org = generate_organisation(100_000, seed=11)
    elapsed = time.perf_counter() - started
    assert len(org.users) == 100_000
    assert len({u["userPrincipalName"] for u in org.users}) == 100_000
    assert elapsed < 10
