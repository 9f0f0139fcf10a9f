"""Phone numbers of the generated people: national and international forms, some invalid."""

from __future__ import annotations

from random import Random

from syncd.fakes.org_data import INVALID_PHONES, Office


def digits(rng: Random, n: int) -> str:
    return str(rng.randrange(10**n)).zfill(n)


def group3(d: str) -> str:
    """Space digits the Nordic way: 12345678 -> 123 456 78, 1234567 -> 123 45 67."""
    if len(d) == 8:
        return f"{d[:3]} {d[3:6]} {d[6:]}"
    if len(d) == 7:
        return f"{d[:3]} {d[3:5]} {d[5:]}"
    return f"{d[:2]} {d[2:4]} {d[4:]}"


def work_phone(rng: Random, office: Office) -> str:
    """A landline in the office's country, international or national format."""
    cc, area = office.country_code, office.area_code
    intl = rng.random() < 0.5
    if cc == "SE":
        sub = digits(rng, 8 if area == "8" else 7)
        sub = str(rng.randint(1, 9)) + sub[1:]
        return f"+46 {area} {group3(sub)}" if intl else f"0{area}-{group3(sub)}"
    if cc in ("NO", "DK"):
        sub = f"{area[:2]} {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)}"
        return f"+{47 if cc == 'NO' else 45} {sub}" if intl else sub
    if cc == "FI":
        sub = f"{rng.randint(2000, 8999)} {digits(rng, 4)}"
        return f"+358 {area} {sub}" if intl else f"0{area} {sub}"
    if cc == "GB":
        sub = f"7946 {digits(rng, 4)}"
        return f"+44 {area} {sub}" if intl else f"0{area} {sub}"
    if cc == "US":
        line = f"555-01{digits(rng, 2)}"
        return f"+1 {area}-{line}" if intl else f"({area}) {line}"
    sub = f"{rng.randint(2, 9)}{digits(rng, 7)}"
    return f"+49 {area} {sub}" if intl else f"0{area} {sub}"


def mobile_phone(rng: Random, office: Office) -> str:
    """A mobile number in the office's country, international or national format."""
    cc = office.country_code
    intl = rng.random() < 0.4
    if cc == "SE":
        prefix = rng.choice(("70", "72", "73", "76"))
        sub = group3(digits(rng, 7))
        return f"+46 {prefix} {sub}" if intl else f"0{prefix}-{sub}"
    if cc == "NO":
        sub = f"{rng.choice('49')}{digits(rng, 2)} {digits(rng, 2)} {digits(rng, 3)}"
        return f"+47 {sub}" if intl else sub
    if cc == "DK":
        sub = f"{rng.randint(20, 31)} {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)}"
        return f"+45 {sub}" if intl else sub
    if cc == "FI":
        sub = f"{digits(rng, 3)} {digits(rng, 4)}"
        return f"+358 40 {sub}" if intl else f"040 {sub}"
    if cc == "GB":
        prefix = rng.choice(("7400", "7710", "7800", "7900", "7960"))
        sub = digits(rng, 6)
        return f"+44 {prefix} {sub}" if intl else f"0{prefix} {sub}"
    if cc == "US":
        line = f"555-01{digits(rng, 2)}"
        return f"+1 917-{line}" if intl else f"(917) {line}"
    sub = f"{rng.randint(2, 9)}{digits(rng, 7)}"
    return f"+49 151 {sub}" if intl else f"0151 {sub}"


def phones_of(rng: Random, office: Office) -> tuple[list[str], str | None]:
    """``businessPhones`` and ``mobilePhone``: missing, well formed or (rarely) garbage."""
    business: list[str] = []
    r = rng.random()
    if r < 0.015:
        business = [rng.choice(INVALID_PHONES)]
    elif r < 0.77:
        business = [work_phone(rng, office)]
    mobile: str | None = None
    r = rng.random()
    if r < 0.01:
        mobile = rng.choice(INVALID_PHONES)
    elif r < 0.56:
        mobile = mobile_phone(rng, office)
    return business, mobile
