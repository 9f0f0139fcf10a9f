"""Seeded generator of realistic organisations shaped like Microsoft Graph v1.0 JSON."""

from __future__ import annotations

import math
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from random import Random
from typing import Any, NamedTuple, Protocol

from syncd.fakes.org_data import (
    CODES,
    DEPARTMENTS,
    EDGE_NAMES,
    FIRST,
    INVALID_PHONES,
    LAST,
    OFFICES,
    PROJECTS,
    TITLES,
    Office,
)
from syncd.fakes.phones import digits, group3, phones_of
from syncd.fakes.scoping import add_scope_data

__all__ = ["Organisation", "generate_organisation"]


@dataclass
class Organisation:
    """A generated tenant: Graph-shaped user and group dicts.

    Every user carries an extra ``managerId`` key and every group an extra ``memberIds`` key (user
    and group ids); the fake Graph turns them into relationships and never serves the keys.
    """

    users: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    domain: str = "contoso.example"

    def user(self, user_id: str) -> dict[str, Any]:
        """Return the user with ``user_id`` (linear scan; for tests)."""
        return next(u for u in self.users if u["id"] == user_id)

    def group(self, group_id: str) -> dict[str, Any]:
        """Return the group with ``group_id`` (linear scan; for tests)."""
        return next(g for g in self.groups if g["id"] == group_id)


_FOLD = str.maketrans(
    {"ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "ß": "ss", "đ": "d", "Đ": "D", "ł": "l",
     "Ł": "L", "þ": "th", "ı": "i", "œ": "oe"}
)  # fmt: skip


def _ascii_slug(text: str) -> str:
    """Fold a name to the lowercase ASCII an admin would put in a UPN: Ødegård -> odegard."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    kept = [c for c in decomposed if c.isascii() and (c.isalnum() or c in "-.")]
    return "".join(kept).lower().strip("-.")


def _uuid(rng: Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _pick_weighted(rng: Random, offices: Sequence[Office], cum: Sequence[int]) -> Office:
    return rng.choices(offices, cum_weights=cum, k=1)[0]


def _build_tree(rng: Random, n: int, top_reports: int) -> list[int]:
    """Parent index per user (-1 for the CEO); managers get 3–10 reports, depth grows like log n.

    Breadth first, but only about half of the people are candidate managers, so the tree is ~5
    levels deep for a few hundred people and ~10 for a hundred thousand, as in real companies.
    """
    parents = [-1] * n
    # [manager index, reports still to hand out]; a list with a moving head is a cheap queue
    queue: list[list[int]] = [[0, top_reports]]
    head = 0
    for i in range(1, n):
        if head == len(queue):  # every candidate is full: promote the newest person
            queue.append([i - 1, rng.randint(3, 10)])
        slot = queue[head]
        parents[i] = slot[0]
        slot[1] -= 1
        if slot[1] == 0:
            head += 1
        if rng.random() < 0.45:
            # most teams are small; a few managers have ten
            queue.append([i, rng.choice((3, 3, 4, 4, 4, 5, 5, 6, 7, 8, 10))])
    return parents


def generate_organisation(
    users: int = 200,
    *,
    seed: int = 1,
    groups: int | None = None,
    memberships_per_user: float = 2.5,
    domain: str = "contoso.example",
    cycle: bool = False,
    guest_share: float = 0.0,
    scope_attributes: bool = False,
) -> Organisation:
    """Generate a deterministic organisation of ``users`` people and about ``groups`` groups.

    The same arguments always give the same organisation. Direct user memberships average about
    ``memberships_per_user`` (each user is already in one department and one office group, so
    values below ~2 only shrink project groups). ``groups=None`` picks a count that suits the size.
    ``cycle=True`` adds one nesting cycle between two project groups (never otherwise).
    ``guest_share`` (e.g. ``scoping.GUEST_SHARE``) makes B2B guests of that share, and
    ``scope_attributes`` adds employeeType and extension attributes (see ``syncd.fakes.scoping``).
    """
    if users < 0:
        raise ValueError("users must be >= 0")
    rng = Random(seed)
    if users == 0:
        return Organisation([], [], domain)

    n_depts = max(3, min(10, users // 25))
    departments = list(DEPARTMENTS[:n_depts])
    parents = _build_tree(rng, users, min(n_depts, users - 1) or 1)
    reports = [0] * users
    depth = [0] * users
    for i in range(1, users):
        reports[parents[i]] += 1
        depth[i] = depth[parents[i]] + 1

    offices = OFFICES
    cum: list[int] = []
    total = 0
    for o in offices:
        total += o.weight
        cum.append(total)

    ids = [_uuid(rng) for _ in range(users)]
    dept_of: list[str] = [""] * users
    office_of: list[Office | None] = [None] * users
    taken: set[str] = set()
    edge_slots: dict[int, tuple[str, str, str]] = {}
    if users >= 20:
        # deterministic but scattered positions for the hard names (not the CEO)
        for pos, name in zip(rng.sample(range(1, users), len(EDGE_NAMES)), EDGE_NAMES, strict=True):
            edge_slots[pos] = name

    result: list[dict[str, Any]] = []
    for i in range(users):
        p = parents[i]
        if i == 0:
            dept, office = "Executive Management", offices[0]
        else:
            dept = departments[(i - 1) % n_depts] if p == 0 else dept_of[p]
            parent_office = office_of[p]
            if parent_office is not None and rng.random() < 0.75:
                office = parent_office
            else:
                office = _pick_weighted(rng, offices, cum)
        remote = i != 0 and rng.random() < 0.03
        dept_of[i] = dept
        office_of[i] = office
        shape = _Place(parents[i], reports[i], depth[i], dept, office, remote)
        result.append(_make_user(rng, i, ids, shape, edge_slots.get(i), taken, domain))

    _ensure_quirks(rng, result)
    group_list = _make_groups(
        rng, result, dept_of, office_of, groups, memberships_per_user, domain, cycle
    )
    # Graph lists objects in no useful order: reports often come before their managers
    rng.shuffle(result)
    if guest_share or scope_attributes:
        add_scope_data(result, seed, domain, guest_share=guest_share, attributes=scope_attributes)
    return Organisation(result, group_list, domain)


class _Place(NamedTuple):
    """Where a person sits in the organisation."""

    parent: int
    reports: int
    depth: int
    dept: str
    office: Office
    remote: bool


def _make_user(
    rng: Random,
    i: int,
    ids: list[str],
    place: _Place,
    edge: tuple[str, str, str] | None,
    taken: set[str],
    domain: str,
) -> dict[str, Any]:
    dept, office, remote = place.dept, place.office, place.remote
    service, display, given_out, surname_out, base = _user_names(rng, i, office, edge)
    nick = _unique_nick(base, taken)
    upn = f"{nick}@{domain}"

    roll = rng.random()
    if roll < 0.02:
        mail: str | None = None
    elif roll < 0.06:
        mail = f"{nick}@{office.country_code.lower()}.{domain}"
    else:
        mail = upn

    title = _job_title(rng, i, place, service)
    business, mobile = phones_of(rng, office)

    country = office.country_code if rng.random() < 0.1 else office.country
    lang_roll = rng.random()
    language = office.language if lang_roll < 0.85 else ("en-US" if lang_roll < 0.9 else None)
    return {
        "id": ids[i],
        "userPrincipalName": upn,
        "accountEnabled": not (i != 0 and rng.random() < 0.02),
        "displayName": display,
        "givenName": given_out,
        "surname": surname_out,
        "jobTitle": title,
        "mail": mail,
        "mailNickname": nick,
        "officeLocation": "Remote" if remote else office.location,
        "streetAddress": None if remote else office.street,
        "city": None if remote else office.city,
        "postalCode": None if remote else office.postal_code,
        "state": office.state,
        "country": country,
        "businessPhones": business,
        "mobilePhone": mobile,
        "companyName": None if rng.random() < 0.05 else office.company,
        "department": dept,
        "employeeId": None if rng.random() < 0.05 else f"E{100000 + i}",
        "preferredLanguage": language,
        "faxNumber": f"+46 8 {group3(digits(rng, 8))}" if rng.random() < 0.02 else None,
        "managerId": ids[place.parent] if place.parent >= 0 else None,
    }


def _user_names(
    rng: Random, i: int, office: Office, edge: tuple[str, str, str] | None
) -> tuple[bool, str, str | None, str | None, str]:
    """Whether person ``i`` is a service mailbox, its displayName, givenName, surname, UPN base."""
    if edge is not None:
        given, surname, _ = edge
    else:
        region = office.country_code if rng.random() < 0.75 else "INT"
        given = rng.choice(FIRST[region])
        surname = rng.choice(LAST[region])
    service = edge is None and i != 0 and rng.random() < 0.01
    if service:
        # shared/service mailboxes have a display name and nothing else
        display = f"{rng.choice(('Reception', 'Meeting Room', 'Helpdesk', 'Shared Inbox'))} "
        display += office.city
        given_out: str | None = None
        surname_out: str | None = None
        base = _ascii_slug(display.replace(" ", "."))
    else:
        display = f"{given} {surname}"
        given_out, surname_out = given, surname
        base = f"{_ascii_slug(given.replace(' ', '-'))}.{_ascii_slug(surname.replace(' ', ''))}"
        base = base.strip(".") or "user"
    return service, display, given_out, surname_out, base


def _unique_nick(base: str, taken: set[str]) -> str:
    """``base``, else ``base2``, ``base3``...: the first nickname not in ``taken`` (added to it)."""
    nick = base
    n = 2
    while nick in taken:
        nick = f"{base}{n}"
        n += 1
    taken.add(nick)
    return nick


def _job_title(rng: Random, i: int, place: _Place, service: bool) -> str | None:
    dept = place.dept
    if i == 0:
        title: str | None = "Chief Executive Officer"
    elif place.depth == 1:
        title = rng.choice((f"Head of {dept}", f"{dept} Director", f"VP {dept}"))
    elif place.reports > 0:
        title = rng.choice((f"{dept} Manager", "Team Lead", "Gruppchef", "Manager"))
    else:
        title = rng.choice(TITLES.get(dept, ("Specialist",)))
    if service or (i != 0 and rng.random() < 0.03):
        title = None
    return title


# Quirks every org of 50+ users must show at least once, so small test orgs exercise them.
_QUIRKS: tuple[tuple[Callable[[dict[str, Any]], bool], Callable[[dict[str, Any]], None]], ...] = (
    (lambda u: not u["accountEnabled"], lambda u: u.update(accountEnabled=False)),
    (lambda u: u["mail"] is None, lambda u: u.update(mail=None)),
    (lambda u: u["jobTitle"] is None, lambda u: u.update(jobTitle=None)),
    (
        lambda u: not u["businessPhones"] and u["mobilePhone"] is None,
        lambda u: u.update(businessPhones=[], mobilePhone=None),
    ),
    (
        lambda u: any(p in INVALID_PHONES for p in u["businessPhones"]),
        lambda u: u.update(businessPhones=["n/a"]),
    ),
    (lambda u: len(u["country"]) == 2, lambda u: u.update(country=CODES[u["country"]])),
)


def _ensure_quirks(rng: Random, users: list[dict[str, Any]]) -> None:
    if len(users) < 50:
        return
    for present, apply in _QUIRKS:
        if not any(present(u) for u in users):
            apply(users[rng.randrange(1, len(users))])


class _NewGroup(Protocol):
    """Makes a group with a mail nickname no other group has."""

    def __call__(
        self, name: str, description: str | None, kind: str = "security"
    ) -> dict[str, Any]: ...


def _make_groups(
    rng: Random,
    users: list[dict[str, Any]],
    dept_of: list[str],
    office_of: list[Office | None],
    groups: int | None,
    per_user: float,
    domain: str,
    cycle: bool,
) -> list[dict[str, Any]]:
    n = len(users)
    ids = [u["id"] for u in users]
    used_nicks: set[str] = set()

    def new_group(name: str, description: str | None, kind: str = "security") -> dict[str, Any]:
        nick = _ascii_slug(name.replace(" ", "-").replace("&", "and")) or "group"
        nick = nick.replace("--", "-")
        base, k = nick, 2
        while nick in used_nicks:
            nick = f"{base}-{k}"
            k += 1
        used_nicks.add(nick)
        unified = kind == "unified"
        mail_enabled = kind in ("unified", "distribution")
        return {
            "id": _uuid(rng),
            "displayName": name,
            "mailNickname": nick,
            "description": description,
            "securityEnabled": kind == "security",
            "mailEnabled": mail_enabled,
            "groupTypes": ["Unified"] if unified else [],
            "mail": f"{nick}@{domain}" if mail_enabled else None,
            "memberIds": [],
        }

    fixed = _fixed_groups(users, ids, dept_of, office_of, new_group)
    group_ids = {g["id"] for g in fixed}
    if groups is None:
        groups = len(fixed) + min(1000, max(2, n // 40))
    if groups <= len(fixed):
        kept = fixed[: max(groups, 0)]
        cut = group_ids - {g["id"] for g in kept}
        for g in kept:  # do not point at groups that were cut
            g["memberIds"] = [m for m in g["memberIds"] if m not in cut]
        return kept

    n_projects = groups - len(fixed)
    direct = sum(1 for g in fixed for m in g["memberIds"] if m not in group_ids)
    budget = max(round(n * per_user) - direct, 3 * n_projects)
    return fixed + _project_groups(rng, ids, n_projects, budget, cycle, new_group)


def _fixed_groups(
    users: list[dict[str, Any]],
    ids: list[str],
    dept_of: list[str],
    office_of: list[Office | None],
    new_group: _NewGroup,
) -> list[dict[str, Any]]:
    """One group per department and per office, the leadership team and the nested groups."""
    fixed: list[dict[str, Any]] = []
    by_dept: dict[str, dict[str, Any]] = {}
    for i, dept in enumerate(dept_of):
        g = by_dept.get(dept)
        if g is None:
            g = by_dept[dept] = new_group(f"All {dept}", f"Everyone in {dept}")
        g["memberIds"].append(ids[i])
    fixed.extend(by_dept.values())

    by_office: dict[str, dict[str, Any]] = {}
    for i, office in enumerate(office_of):
        if office is None or users[i]["officeLocation"] == "Remote":
            continue
        g = by_office.get(office.location)
        if g is None:
            g = by_office[office.location] = new_group(
                f"Office {office.location}", f"Staff based in {office.city}, {office.country}"
            )
        g["memberIds"].append(ids[i])
    fixed.extend(by_office.values())

    leadership = new_group("Leadership Team", None, "unified")
    leadership["memberIds"] = [u["id"] for u in users if u["managerId"] in (None, ids[0])]
    fixed.append(leadership)

    # nesting: country groups contain office groups, and an all-staff group contains those
    swedish = [g for loc, g in by_office.items() if loc in ("Stockholm HQ", "Göteborg", "Malmö")]
    if len(swedish) >= 2:
        sweden = new_group("All Sweden", "Alla medarbetare i Sverige", "distribution")
        sweden["memberIds"] = [g["id"] for g in swedish]
        fixed.append(sweden)
        everyone = new_group("All Staff", "Every office, through nested groups")
        everyone["memberIds"] = [sweden["id"]] + [
            g["id"] for g in by_office.values() if g not in swedish
        ]
        fixed.append(everyone)
    return fixed


def _project_groups(
    rng: Random,
    ids: list[str],
    n_projects: int,
    budget: int,
    cycle: bool,
    new_group: _NewGroup,
) -> list[dict[str, Any]]:
    """Project groups sharing ``budget`` direct members, lognormally sized; a few nest."""
    n = len(ids)
    weights = [rng.lognormvariate(0.0, 1.0) for _ in range(n_projects)]
    scale = budget / sum(weights)
    projects: list[dict[str, Any]] = []
    for k in range(n_projects):
        word = PROJECTS[k % len(PROJECTS)]
        round_no = k // len(PROJECTS)
        name = f"Project {word}" + (f" {round_no + 1}" if round_no else "")
        kind = "unified" if rng.random() < 0.3 else "security"
        desc = None if rng.random() < 0.2 else f"Members of {name}"
        g = new_group(name, desc, kind)
        size = min(n, max(3, math.floor(weights[k] * scale)))
        g["memberIds"] = [ids[j] for j in rng.sample(range(n), size)]
        projects.append(g)
    # nest only forward (an earlier project contains a later one), so there is no cycle
    for k in range(n_projects - 1):
        if rng.random() < 0.08:
            child = projects[rng.randrange(k + 1, n_projects)]
            if child["id"] not in projects[k]["memberIds"]:
                projects[k]["memberIds"].append(child["id"])
    if cycle and n_projects >= 2:
        a, b = projects[0], projects[1]
        if b["id"] not in a["memberIds"]:
            a["memberIds"].append(b["id"])
        b["memberIds"].append(a["id"])
    return projects
