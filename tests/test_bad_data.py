"""A corpus of bad directory records, each with its defined outcome (issue 6).

Outcomes: ``sent`` (possibly cleaned) with the value Learnster receives, ``dropped`` (the field
is left out and a warning names user and field) or ``skipped`` (the user is not provisioned and
an error names the object id). No record may crash a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from syncd.core.decode import decode_user
from syncd.core.mapping import (
    COUNTRY,
    DISPLAY_NAME,
    FAMILY_NAME,
    GIVEN_NAME,
    MANAGER,
    MOBILE_PHONE,
    OFFICE,
    ORGANIZATION,
    TITLE,
    USER_NAME,
    WORK_EMAIL,
    WORK_PHONE,
    MappingOptions,
    map_user,
)
from syncd.errors import ExitCode
from tests.conftest import Harness

LONG = "x" * 257
BASE: dict[str, Any] = {
    "id": "11111111-0000-0000-0000-000000000000",
    "userPrincipalName": "base.user@contoso.example",
    "accountEnabled": True,
    "displayName": "Base User",
}


@dataclass(frozen=True)
class Case:
    name: str
    record: dict[str, Any]
    outcome: str  # sent | dropped | skipped
    path: str = ""  # the SCIM path (sent) or the Graph field named in the problem
    value: Any = None  # what Learnster receives (sent)


CASES = [
    # -- the key and the matching attribute
    Case("no UPN", {"userPrincipalName": None}, "skipped", "userPrincipalName"),
    Case("empty UPN", {"userPrincipalName": ""}, "skipped", "userPrincipalName"),
    Case("blank UPN", {"userPrincipalName": "   "}, "skipped", "userPrincipalName"),
    Case(
        "UPN not an address", {"userPrincipalName": "just-a-name"}, "skipped", "userPrincipalName"
    ),
    Case(
        "UPN with a space",
        {"userPrincipalName": "a b@contoso.example"},
        "skipped",
        "userPrincipalName",
    ),
    Case("UPN a number", {"userPrincipalName": 12345}, "skipped", "userPrincipalName"),
    Case(
        "UPN over-long",
        {"userPrincipalName": LONG + "@contoso.example"},
        "skipped",
        "userPrincipalName",
    ),
    Case("no id", {"id": None}, "skipped", "id"),
    Case("id a number", {"id": 42}, "skipped", "id"),
    Case(
        "guest UPN #EXT#: sent without it, as Entra does",
        {"userPrincipalName": "ann_gmail.com#EXT#@contoso.example"},
        "sent",
        USER_NAME,
        "ann_gmail.com@contoso.example",
    ),
    Case(
        "UPN with whitespace around",
        {"userPrincipalName": "  pad@contoso.example \n"},
        "sent",
        USER_NAME,
        "pad@contoso.example",
    ),
    # -- e-mail
    Case("mail invalid", {"mail": "not-an-address"}, "dropped", "mail"),
    Case("mail with two @", {"mail": "a@b@c.example"}, "dropped", "mail"),
    Case("mail a list", {"mail": ["a@b.example"]}, "dropped", "mail"),
    Case(
        "mail fine",
        {"mail": "Base.User@Contoso.example"},
        "sent",
        WORK_EMAIL,
        "Base.User@Contoso.example",
    ),
    # -- control characters and encodings
    Case("newline in a name", {"displayName": "Base\nUser"}, "sent", DISPLAY_NAME, "Base User"),
    Case("tab in a title", {"jobTitle": "Head\tof\tSales"}, "sent", TITLE, "Head of Sales"),
    Case("NUL in a name", {"givenName": "An\x00na"}, "sent", GIVEN_NAME, "Anna"),
    Case("bell and DEL", {"surname": "Berg\x07\x7f"}, "sent", FAMILY_NAME, "Berg"),
    Case("C1 control", {"companyName": "Contoso\x9b AB"}, "sent", ORGANIZATION, "Contoso AB"),
    Case(
        "lone surrogate",
        {"displayName": "Bad \ud800 half"},
        "sent",
        DISPLAY_NAME,
        "Bad \ufffd half",
    ),
    Case("non-BMP characters kept", {"surname": "𠮷田 🎓"}, "sent", FAMILY_NAME, "𠮷田 🎓"),
    Case("emoji with zero-width joiner kept", {"jobTitle": "Dev 👩‍💻"}, "sent", TITLE, "Dev 👩‍💻"),
    Case("right-to-left name kept", {"givenName": "مريم"}, "sent", GIVEN_NAME, "مريم"),
    Case("only control characters", {"jobTitle": "\x00\x01\n"}, "dropped", "jobTitle"),
    # -- sizes and types
    Case("over-long title", {"jobTitle": LONG}, "dropped", "jobTitle"),
    Case("over-long office", {"officeLocation": LONG}, "dropped", "officeLocation"),
    Case("256 characters is fine", {"jobTitle": "y" * 256}, "sent", TITLE, "y" * 256),
    Case("null where a string is expected", {"jobTitle": None}, "dropped", "jobTitle"),
    Case("number where a string is expected", {"postalCode": 11157}, "dropped", "postalCode"),
    Case("object where a string is expected", {"city": {"name": "Oslo"}}, "dropped", "city"),
    Case("boolean where a string is expected", {"country": True}, "dropped", "country"),
    Case("accountEnabled as a string", {"accountEnabled": "False"}, "skipped", "accountEnabled"),
    Case("accountEnabled nonsense", {"accountEnabled": "maybe"}, "sent", "active", True),
    Case(
        "businessPhones not a list",
        {"businessPhones": "+46 8 123 456 78"},
        "dropped",
        "businessPhones",
    ),
    Case(
        "businessPhones with null",
        {"businessPhones": [None, "+46 8 123 456 78"]},
        "sent",
        WORK_PHONE,
        "+46812345678",
    ),
    # -- phones
    Case("phone with letters", {"mobilePhone": "call me"}, "dropped", "mobilePhone"),
    Case("phone too short", {"businessPhones": ["12"]}, "dropped", "businessPhones"),
    Case(
        "national phone, default region",
        {"mobilePhone": "070-123 45 67"},
        "sent",
        MOBILE_PHONE,
        "+46701234567",
    ),
    Case(
        "phone with extension",
        {"businessPhones": ["+46 8 123 456 78 ext. 9"]},
        "sent",
        WORK_PHONE,
        "+46812345678",
    ),
    Case(
        "country as a code",
        {"country": "NO", "mobilePhone": "412 34 567"},
        "sent",
        MOBILE_PHONE,
        "+4741234567",
    ),
    # -- manager
    Case("self manager", {"manager": {"id": BASE["id"]}}, "dropped", "manager"),
    Case("manager without id", {"manager": {"displayName": "Boss"}}, "sent", MANAGER, None),
    Case("manager a string", {"manager": "boss"}, "sent", MANAGER, None),
    Case("office fine", {"officeLocation": "HQ"}, "sent", OFFICE, "HQ"),
    Case("country verbatim", {"country": "Sverige"}, "sent", COUNTRY, "Sverige"),
]


def _outcome(case: Case) -> tuple[dict[str, Any] | None, list[Any]]:
    decoded = decode_user({**BASE, **case.record})
    if decoded.user is None:
        return None, decoded.problems
    attrs, problems = map_user(decoded.user, MappingOptions(phone_default_region="SE"))
    return attrs, [*decoded.problems, *problems]


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_record_outcome(case: Case) -> None:
    attrs, problems = _outcome(case)
    object_id = case.record.get("id", BASE["id"])
    if case.outcome == "skipped":
        if case.path == "accountEnabled":
            # a string "False" is read as the boolean it spells, with a warning
            assert attrs is not None
            assert attrs["active"] is False
            assert [p.field for p in problems] == ["accountEnabled"]
            return
        assert attrs is None
        [problem] = [p for p in problems if p.severity == "error"]
        assert problem.field == case.path
        assert problem.object_id == (object_id if isinstance(object_id, str) else "<unknown>")
        return
    assert attrs is not None
    if case.outcome == "dropped":
        graph_field = case.path
        assert any(p.field == graph_field and p.severity == "warning" for p in problems) or (
            case.record.get(graph_field, "") is None
        ), problems
        sent_value = {
            k: v for k, v in attrs.items() if k not in (USER_NAME, "active", DISPLAY_NAME)
        }
        assert all(str(v).strip() for v in sent_value.values())
        assert not any(graph_field in p.field and p.severity == "error" for p in problems)
        return
    assert attrs.get(case.path) == case.value
    assert all(p.severity == "warning" for p in problems)


def test_duplicate_upns_keep_one_deterministically_and_name_the_other() -> None:
    from syncd.core.ledger import LedgerUser
    from syncd.core.records import Entry, Presence
    from syncd.core.scope import Scope
    from syncd.core.targets import build_targets

    def user(uid: str, upn: str) -> Any:
        decoded = decode_user({"id": uid, "userPrincipalName": upn})
        assert decoded.user is not None
        return decoded.user

    users = {
        "b": Entry(user("b", "Twin@contoso.example"), Presence.PRESENT),
        "a": Entry(user("a", "twin@contoso.example"), Presence.PRESENT),
        "c": Entry(user("c", "other@contoso.example"), Presence.PRESENT),
    }
    scope = Scope(users=set(users))
    targets, _, problems = build_targets(users, {}, scope, {}, MappingOptions())
    assert set(targets) == {"a", "c"}  # not linked yet: the lowest object id keeps the UPN
    [problem] = problems
    assert (problem.object_id, problem.field, problem.severity) == (
        "b",
        "userPrincipalName",
        "error",
    )
    assert "also the UPN of a" in problem.message
    # Once one of them is linked, that one keeps it, whatever the ids.
    ledger = {"b": LedgerUser("scim-b", {"userName": "Twin@contoso.example", "active": True})}
    targets, _, problems = build_targets(users, {}, scope, ledger, MappingOptions())
    assert set(targets) == {"b", "c"}
    assert [p.object_id for p in problems] == ["a"]


def test_a_cycle_survives_the_whole_corpus(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(users=5)
    added = 0
    for i, case in enumerate(CASES):
        record = {k: v for k, v in {**BASE, **case.record}.items() if k not in ("id", "manager")}
        if (
            not isinstance(record.get("userPrincipalName"), str)
            or not record["userPrincipalName"].strip()
        ):
            continue  # the fake directory itself refuses these (Graph requires a UPN)
        if "@" in record["userPrincipalName"] and case.outcome != "skipped":
            local, domain = record["userPrincipalName"].strip().split("@", 1)
            record["userPrincipalName"] = f"{local}.{i}@{domain}"
        try:
            h.graph.add_user(record)
        except (ValueError, TypeError, KeyError):
            continue
        added += 1
    assert added >= 30
    report = h.sync()
    assert report.exit_code in (ExitCode.OK, ExitCode.PARTIAL)
    assert report.failures == []  # nothing invalid was sent: Learnster refused nothing
    for resource in h.learnster.users.values():
        for phone in resource.get("phoneNumbers", []):
            assert phone["value"].startswith("+")
    sent_before = len(h.scim_requests())
    assert h.sync().exit_code == ExitCode.OK
    assert h.scim_requests()[sent_before:] == []  # converged: the second cycle sends nothing


def test_odd_structures_do_not_break_a_cycle(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(users=10)
    a = h.graph.add_user({"userPrincipalName": "cycle.a@contoso.example", "displayName": "A"})
    b = h.graph.add_user({"userPrincipalName": "cycle.b@contoso.example", "displayName": "B"})
    h.graph.set_manager(a, b)
    h.graph.set_manager(b, a)  # a manager cycle: each is the other's manager
    outer = h.graph.add_group({"displayName": "Outer"}, member_ids=[a])
    inner = h.graph.add_group({"displayName": "Inner"}, member_ids=[b, outer])
    h.graph.add_member(outer, inner)  # Outer contains Inner contains Outer
    h.graph.add_device({"displayName": "Laptop 7"}, group_ids=[outer])
    h.graph.add_contact(
        {"displayName": "Supplier", "mail": "s@supplier.example"}, group_ids=[inner]
    )
    many = [
        h.graph.add_group({"displayName": f"Team {i:04d}"}, member_ids=[a]) for i in range(1500)
    ]
    h.reconfigure(
        '[scope]\nmode = "groups"\ngroups = ["Outer"]\nnested = true\nsync_groups = "all"\n'
    )
    report = h.sync()
    assert report.exit_code == ExitCode.OK, report.failures

    scim = {u["userName"]: u["id"] for u in h.learnster.users.values()}
    assert set(scim) == {"cycle.a@contoso.example", "cycle.b@contoso.example"}
    a_id, b_id = scim["cycle.a@contoso.example"], scim["cycle.b@contoso.example"]
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    assert h.learnster.users[a_id][enterprise]["manager"]["value"] == b_id
    assert h.learnster.users[b_id][enterprise]["manager"]["value"] == a_id
    for gid, members in ((outer, {a_id}), (inner, {b_id})):
        tag = h.learnster.group_by_external_id(gid)
        assert tag is not None
        assert {m["value"] for m in tag["members"]} == members  # no device, contact or group
    in_many = sum(
        1
        for gid in many
        if {m["value"] for m in (h.learnster.group_by_external_id(gid) or {}).get("members", [])}
        == {a_id}
    )
    assert in_many == 1500
    h.learnster.clear_requests()
    assert h.sync().exit_code == ExitCode.OK
    assert h.scim_requests() == []
