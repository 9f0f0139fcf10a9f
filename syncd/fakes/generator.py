"""Seeded generator of realistic organisations shaped like Microsoft Graph v1.0 JSON."""

from __future__ import annotations

import math
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from random import Random
from typing import Any, NamedTuple, Protocol

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


class _Office(NamedTuple):
    location: str
    street: str
    city: str
    postal_code: str
    state: str | None
    country: str
    country_code: str
    language: str
    company: str
    weight: int
    area_code: str  # national trunk-less area code used for landlines


_OFFICES: tuple[_Office, ...] = (
    _Office("Stockholm HQ", "Kungsgatan 12", "Stockholm", "111 43", None, "Sweden", "SE", "sv-SE",
            "Contoso AB", 30, "8"),
    _Office("Göteborg", "Kungsportsavenyen 21", "Göteborg", "411 36", None, "Sweden", "SE",
            "sv-SE", "Contoso AB", 12, "31"),
    _Office("Malmö", "Stortorget 3", "Malmö", "211 22", None, "Sweden", "SE", "sv-SE",
            "Contoso AB", 8, "40"),
    _Office("Oslo", "Karl Johans gate 16", "Oslo", "0154", None, "Norway", "NO", "nb-NO",
            "Contoso AS", 10, "22"),
    _Office("København", "Vesterbrogade 8", "København V", "1620", None, "Denmark", "DK", "da-DK",
            "Contoso ApS", 8, "33"),
    _Office("Helsinki", "Mannerheimintie 14", "Helsinki", "00100", None, "Finland", "FI", "fi-FI",
            "Contoso Oy", 7, "9"),
    _Office("London", "12 Finsbury Square", "London", "EC2A 1AS", None, "United Kingdom", "GB",
            "en-GB", "Contoso Ltd", 10, "20"),
    _Office("New York", "350 Fifth Avenue", "New York", "10118", "NY", "United States", "US",
            "en-US", "Contoso Inc.", 9, "212"),
    _Office("Berlin", "Friedrichstraße 68", "Berlin", "10117", None, "Germany", "DE", "de-DE",
            "Contoso GmbH", 6, "30"),
)  # fmt: skip

_FIRST: dict[str, tuple[str, ...]] = {
    "SE": ("Anna", "Erik", "Maria", "Lars", "Karin", "Johan", "Åsa", "Björn", "Märta", "Göran",
           "Linnéa", "Oskar", "Elin", "Måns", "Ingrid", "Per", "Sofia", "Nils", "Frida", "Anders",
           "Ebba", "Gustav", "Maja", "Olof", "Sara", "Ulrika", "Hampus", "Tove", "Kjell", "Agnes",
           "Jöns", "Ann-Sofie", "Karl-Johan", "Lovisa", "Viktor", "Ylva"),
    "NO": ("Ola", "Kari", "Øystein", "Ingrid", "Håkon", "Sigrid", "Bjørn", "Solveig", "Åse",
           "Torstein", "Ragnhild", "Eirik", "Marit", "Jørgen", "Synnøve"),
    "DK": ("Søren", "Mette", "Jens", "Anne", "Mads", "Freja", "Rasmus", "Ida", "Niels", "Signe",
           "Bjørk", "Jørn", "Kirsten", "Asbjørn"),
    "FI": ("Mikko", "Aino", "Jukka", "Päivi", "Ville", "Sanna", "Tuomas", "Elina", "Jyrki",
           "Kaisa", "Tiina", "Jaana", "Väinö", "Eeva-Liisa"),
    "GB": ("Oliver", "Amelia", "Siân", "Rhys", "Charlotte", "Harry", "Niamh", "Aoife", "George",
           "Emily", "Mary-Jane", "Eóin"),
    "US": ("James", "Mary", "Michael", "Jennifer", "DeShawn", "José", "María", "Emily", "Tyler",
           "Ashley", "Jo Ann", "Brandon"),
    "DE": ("Jürgen", "Sabine", "Lukas", "Sophie", "Jörg", "Katharina", "Maximilian", "Lena",
           "Hans-Peter", "Björn"),
    "INT": ("Zoë", "François", "Chloé", "Ahmed", "Fatima", "Mohammed", "Aïsha", "Dmitrij",
            "Zeynep", "Wei", "Priya", "Ngozi", "Łukasz", "Agnieszka", "Thảo", "Jean-Luc", "Noémie",
            "Ioana", "Renée", "Kenji"),
}  # fmt: skip

_LAST: dict[str, tuple[str, ...]] = {
    "SE": ("Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson",
           "Persson", "Svensson", "Gustafsson", "Lindqvist", "Berg", "Åberg", "Sjöström",
           "Löfgren", "Ström", "Ekström", "Bäckström", "Håkansson", "Öberg", "Lundgren", "Holm",
           "Björk", "Nyström", "Lindström-Ek", "af Klint", "von Essen", "Wåhlin"),
    "NO": ("Hansen", "Johansen", "Olsen", "Larsen", "Ødegaard", "Bakke", "Haugen", "Sæther",
           "Dahl", "Kristiansen", "Lie", "Bråten", "Strøm-Nilsen"),
    "DK": ("Jensen", "Nielsen", "Hansen", "Pedersen", "Sørensen", "Rasmussen", "Møller", "Kjær",
           "Thomsen", "Poulsen", "Østergaard"),
    "FI": ("Virtanen", "Korhonen", "Mäkinen", "Nieminen", "Hämäläinen", "Koskinen", "Järvinen",
           "Lehtonen", "Heikkilä", "Saarinen"),
    "GB": ("Smith", "Jones", "O'Brien", "Taylor", "Davies", "Evans", "Brown", "Wilson",
           "Smith-Jones", "MacDonald", "O'Connor", "Ap Rhys"),
    "US": ("Johnson", "Williams", "Garcia", "Rodriguez", "Martinez", "Nguyen", "D'Angelo", "Kim",
           "Patel", "Washington", "St. James"),
    "DE": ("Müller", "Schmidt", "Schneider", "Fischer", "Weiß", "Groß", "Schäfer", "Köhler",
           "Bauer", "Hoffmann"),
    "INT": ("Nguyễn", "Kowalski", "Wiśniewska", "Yılmaz", "Al-Sayed", "Dubois", "Le Goff",
            "García Márquez", "Chen", "Ivanova", "Okafor", "Çelik", "Đorđević", "N'Diaye",
            "Dvořák", "Sánchez", "Papadopoulos", "𠮷田"),
}  # fmt: skip

# Names that downstream code must survive; each org of a reasonable size gets all of them.
_EDGE_NAMES: tuple[tuple[str, str, str], ...] = (
    ("Siobhán", "O'Sullivan", "GB"),
    ("Anna-Karin", "Lindström-Ek", "SE"),
    ("Kenji", "𠮷田", "INT"),
    ("Øyvind", "Ødegård", "NO"),
    ("Zoë", "Ångström", "SE"),
)

_DEPARTMENTS: tuple[str, ...] = (
    "Engineering", "Sales", "Marketing", "Finance", "Human Resources", "Customer Success",
    "Operations", "Legal & Compliance", "IT", "Product", "Kundtjänst", "Research & Development",
)  # fmt: skip

_TITLES: dict[str, tuple[str, ...]] = {
    "Engineering": ("Software Engineer", "Senior Software Engineer", "Systemutvecklare",
                    "Site Reliability Engineer", "QA Engineer", "Staff Engineer"),
    "Sales": ("Account Executive", "Key Account Manager", "Säljare", "Sales Development Rep"),
    "Marketing": ("Marketing Specialist", "Content Writer", "Brand Designer", "SEO Specialist"),
    "Finance": ("Accountant", "Ekonomiassistent", "Financial Controller", "Payroll Specialist"),
    "Human Resources": ("HR Partner", "Recruiter", "HR-specialist", "People Coordinator"),
    "Customer Success": ("Customer Success Manager", "Support Engineer", "Onboarding Specialist"),
    "Operations": ("Operations Analyst", "Logistics Coordinator", "Facilities Coordinator"),
    "Legal & Compliance": ("Legal Counsel", "Compliance Officer", "Paralegal", "Jurist"),
    "IT": ("IT Technician", "System Administrator", "IT-tekniker", "Service Desk Agent"),
    "Product": ("Product Manager", "UX Designer", "Product Owner", "UX Researcher"),
    "Kundtjänst": ("Kundtjänstmedarbetare", "Kundrådgivare", "Teamkoordinator"),
    "Research & Development": ("Research Scientist", "Lab Technician", "Forskningsingenjör"),
}  # fmt: skip

_PROJECTS: tuple[str, ...] = (
    "Aurora", "Borealis", "Fjällräv", "Älgen", "Midnattssol", "Nordstjärnan", "Kraken", "Valkyrie",
    "Odin", "Freja", "Skärgården", "Tundra", "Glacier", "Fika Club", "Innovation Lab",
    "Safety Committee", "Mentoring Programme", "Green Team", "Onboarding 2025", "Hackathon",
    "ERP Migration", "Café Crew", "Zürich Pilot", "Ω Initiative", "Data Guild", "Security Champions",
)  # fmt: skip

_CODES = {o.country: o.country_code for o in _OFFICES}
_INVALID_PHONES: tuple[str, ...] = ("12", "n/a", "-", "+46", "070-12", "ext. 4411", "0000")

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


def _digits(rng: Random, n: int) -> str:
    return str(rng.randrange(10**n)).zfill(n)


def _group3(d: str) -> str:
    """Space digits the Nordic way: 12345678 -> 123 456 78, 1234567 -> 123 45 67."""
    if len(d) == 8:
        return f"{d[:3]} {d[3:6]} {d[6:]}"
    if len(d) == 7:
        return f"{d[:3]} {d[3:5]} {d[5:]}"
    return f"{d[:2]} {d[2:4]} {d[4:]}"


def _work_phone(rng: Random, office: _Office) -> str:
    """A landline in the office's country, international or national format."""
    cc, area = office.country_code, office.area_code
    intl = rng.random() < 0.5
    if cc == "SE":
        sub = _digits(rng, 8 if area == "8" else 7)
        sub = str(rng.randint(1, 9)) + sub[1:]
        return f"+46 {area} {_group3(sub)}" if intl else f"0{area}-{_group3(sub)}"
    if cc in ("NO", "DK"):
        sub = f"{area[:2]} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}"
        return f"+{47 if cc == 'NO' else 45} {sub}" if intl else sub
    if cc == "FI":
        sub = f"{rng.randint(2000, 8999)} {_digits(rng, 4)}"
        return f"+358 {area} {sub}" if intl else f"0{area} {sub}"
    if cc == "GB":
        sub = f"7946 {_digits(rng, 4)}"
        return f"+44 {area} {sub}" if intl else f"0{area} {sub}"
    if cc == "US":
        line = f"555-01{_digits(rng, 2)}"
        return f"+1 {area}-{line}" if intl else f"({area}) {line}"
    sub = f"{rng.randint(2, 9)}{_digits(rng, 7)}"
    return f"+49 {area} {sub}" if intl else f"0{area} {sub}"


def _mobile_phone(rng: Random, office: _Office) -> str:
    """A mobile number in the office's country, international or national format."""
    cc = office.country_code
    intl = rng.random() < 0.4
    if cc == "SE":
        prefix = rng.choice(("70", "72", "73", "76"))
        sub = _group3(_digits(rng, 7))
        return f"+46 {prefix} {sub}" if intl else f"0{prefix}-{sub}"
    if cc == "NO":
        sub = f"{rng.choice('49')}{_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 3)}"
        return f"+47 {sub}" if intl else sub
    if cc == "DK":
        sub = f"{rng.randint(20, 31)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}"
        return f"+45 {sub}" if intl else sub
    if cc == "FI":
        sub = f"{_digits(rng, 3)} {_digits(rng, 4)}"
        return f"+358 40 {sub}" if intl else f"040 {sub}"
    if cc == "GB":
        prefix = rng.choice(("7400", "7710", "7800", "7900", "7960"))
        sub = _digits(rng, 6)
        return f"+44 {prefix} {sub}" if intl else f"0{prefix} {sub}"
    if cc == "US":
        line = f"555-01{_digits(rng, 2)}"
        return f"+1 917-{line}" if intl else f"(917) {line}"
    sub = f"{rng.randint(2, 9)}{_digits(rng, 7)}"
    return f"+49 151 {sub}" if intl else f"0151 {sub}"


def _pick_weighted(rng: Random, offices: Sequence[_Office], cum: Sequence[int]) -> _Office:
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
) -> Organisation:
    """Generate a deterministic organisation of ``users`` people and about ``groups`` groups.

    The same arguments always give the same organisation. Direct user memberships average about
    ``memberships_per_user`` (each user is already in one department and one office group, so
    values below ~2 only shrink project groups). ``groups=None`` picks a count that suits the size.
    ``cycle=True`` adds one nesting cycle between two project groups (never otherwise).
    """
    if users < 0:
        raise ValueError("users must be >= 0")
    rng = Random(seed)
    if users == 0:
        return Organisation([], [], domain)

    n_depts = max(3, min(10, users // 25))
    departments = list(_DEPARTMENTS[:n_depts])
    parents = _build_tree(rng, users, min(n_depts, users - 1) or 1)
    reports = [0] * users
    depth = [0] * users
    for i in range(1, users):
        reports[parents[i]] += 1
        depth[i] = depth[parents[i]] + 1

    offices = _OFFICES
    cum: list[int] = []
    total = 0
    for o in offices:
        total += o.weight
        cum.append(total)

    ids = [_uuid(rng) for _ in range(users)]
    dept_of: list[str] = [""] * users
    office_of: list[_Office | None] = [None] * users
    taken: set[str] = set()
    edge_slots: dict[int, tuple[str, str, str]] = {}
    if users >= 20:
        # deterministic but scattered positions for the hard names (not the CEO)
        for pos, name in zip(
            rng.sample(range(1, users), len(_EDGE_NAMES)), _EDGE_NAMES, strict=True
        ):
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
    return Organisation(result, group_list, domain)


class _Place(NamedTuple):
    """Where a person sits in the organisation."""

    parent: int
    reports: int
    depth: int
    dept: str
    office: _Office
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
    business, mobile = _phones(rng, office)

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
        "faxNumber": f"+46 8 {_group3(_digits(rng, 8))}" if rng.random() < 0.02 else None,
        "managerId": ids[place.parent] if place.parent >= 0 else None,
    }


def _user_names(
    rng: Random, i: int, office: _Office, edge: tuple[str, str, str] | None
) -> tuple[bool, str, str | None, str | None, str]:
    """Whether person ``i`` is a service mailbox, its displayName, givenName, surname, UPN base."""
    if edge is not None:
        given, surname, _ = edge
    else:
        region = office.country_code if rng.random() < 0.75 else "INT"
        given = rng.choice(_FIRST[region])
        surname = rng.choice(_LAST[region])
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
        title = rng.choice(_TITLES.get(dept, ("Specialist",)))
    if service or (i != 0 and rng.random() < 0.03):
        title = None
    return title


def _phones(rng: Random, office: _Office) -> tuple[list[str], str | None]:
    """``businessPhones`` and ``mobilePhone``: missing, well formed or (rarely) garbage."""
    business: list[str] = []
    r = rng.random()
    if r < 0.015:
        business = [rng.choice(_INVALID_PHONES)]
    elif r < 0.77:
        business = [_work_phone(rng, office)]
    mobile: str | None = None
    r = rng.random()
    if r < 0.01:
        mobile = rng.choice(_INVALID_PHONES)
    elif r < 0.56:
        mobile = _mobile_phone(rng, office)
    return business, mobile


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
        lambda u: any(p in _INVALID_PHONES for p in u["businessPhones"]),
        lambda u: u.update(businessPhones=["n/a"]),
    ),
    (lambda u: len(u["country"]) == 2, lambda u: u.update(country=_CODES[u["country"]])),
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
    office_of: list[_Office | None],
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
    office_of: list[_Office | None],
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
        word = _PROJECTS[k % len(_PROJECTS)]
        round_no = k // len(_PROJECTS)
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
