"""What attribute scoping filters look at: B2B guests, employee types and extension attributes.

``generate_organisation(..., guest_share=..., scope_attributes=True)`` applies this to an
organisation once it is complete, drawing from random streams of its own (``f"{seed}:guests"``,
``f"{seed}:attributes"``): the organisation's random stream is not touched, so every group and
every user that does not become a guest keeps the values it has without this.
"""

from __future__ import annotations

from random import Random
from typing import Any

from syncd.fakes.org_data import CODES, DEPARTMENTS

# The application that owns the tenant's directory extensions (schema-extension owner).
EXTENSION_APP_ID = "6f1c2a9e-3b7d-4e58-a0c4-91d2b8e7f350"
_EXTENSION_PREFIX = f"extension_{EXTENSION_APP_ID.replace('-', '')}_"
COST_CENTER = f"{_EXTENSION_PREFIX}costCenter"
IS_CONTRACTOR = f"{_EXTENSION_PREFIX}isContractor"
# Graph names a directory extension extension_<owner appId without dashes>_<name>.
DIRECTORY_EXTENSIONS: dict[str, type] = {COST_CENTER: str, IS_CONTRACTOR: bool}
EXTENSION_ATTRIBUTES: tuple[str, ...] = tuple(f"extensionAttribute{i}" for i in range(1, 16))
GUEST_SHARE = 0.02  # a share of guests that suits tests of scoping filters

# The guests' own companies and the domains of their addresses.
PARTNERS: tuple[tuple[str, str], ...] = (
    ("Fabrikam, Inc.", "fabrikam.com"),
    ("Northwind Traders", "northwindtraders.com"),
    ("Adventure Works Cycles", "adventure-works.com"),
    ("Tailspin Toys", "tailspintoys.com"),
    ("Woodgrove Bank", "woodgrovebank.com"),
    ("Litware, Inc.", "litwareinc.com"),
    ("Wide World Importers", "wideworldimporters.com"),
    ("Fourth Coffee", "mail.fourthcoffee.co.uk"),
)
# what a guest does not have of the employee it was generated as
_NOT_FOR_GUESTS = (
    "department",
    "employeeId",
    "officeLocation",
    "streetAddress",
    "city",
    "postalCode",
)
_COST_CENTRES = {d: f"CC{4100 + 10 * i}" for i, d in enumerate(DEPARTMENTS)}
_REGIONS = {"SE": "EMEA-N", "NO": "EMEA-N", "DK": "EMEA-N", "FI": "EMEA-N", "GB": "EMEA-W"}
_REGIONS |= {"DE": "EMEA-W", "US": "AMER"}


def guest_upn(address: str, domain: str) -> str:
    """The UPN Entra gives a B2B guest: ``anna@fabrikam.com`` -> ``anna_fabrikam.com#EXT#@<domain>``.

    The external address's "@" becomes "_", its dots stay; ``domain`` is the inviting tenant's.
    """
    return f"{address.replace('@', '_')}#EXT#@{domain}"


def add_scope_data(
    users: list[dict[str, Any]],
    seed: int,
    domain: str,
    *,
    guest_share: float,
    attributes: bool,
) -> None:
    """Store ``userType`` on every user, turn a share into guests, add the scoping attributes."""
    if not 0.0 <= guest_share <= 1.0:
        raise ValueError("guest_share must be between 0 and 1")
    guests: set[str] = set()
    if guest_share > 0:
        guests = _make_guests(users, Random(f"{seed}:guests"), domain, guest_share)
    for user in users:
        user.setdefault("userType", "Member")
    if attributes:
        rng = Random(f"{seed}:attributes")
        for user in users:
            _add_attributes(user, rng, user["id"] in guests)


def _make_guests(users: list[dict[str, Any]], rng: Random, domain: str, share: float) -> set[str]:
    """Guests among people who manage nobody; one more such member gets a UPN with "_"."""
    managers = {u["managerId"] for u in users}
    leaves = [u for u in users if u["id"] not in managers and u["givenName"] and u["managerId"]]
    count = min(len(leaves) - 1, round(len(users) * share))
    if count <= 0:
        return set()
    chosen = rng.sample(leaves, count + 1)
    for k, user in enumerate(chosen[:count]):
        company, partner_domain = rng.choice(PARTNERS)
        address = f"{user['mailNickname']}@{partner_domain}"
        upn = guest_upn(address, domain)
        user.update(
            userPrincipalName=upn,
            mail=address,
            mailNickname=upn.partition("@")[0],
            userType="Guest",
            externalUserState="PendingAcceptance" if k % 5 == 1 else "Accepted",
            companyName=company,
            businessPhones=[],
        )
        user.update(dict.fromkeys(_NOT_FOR_GUESTS))  # they work elsewhere
    # a member whose UPN has an underscore (never "_" otherwise): #EXT# handling must spare it
    decoy = chosen[count]
    decoy["userPrincipalName"] = f"{decoy['mailNickname'].replace('.', '_', 1)}@{domain}"
    return {u["id"] for u in chosen[:count]}


def _add_attributes(user: dict[str, Any], rng: Random, guest: bool) -> None:
    # the same draws for every user, so a user's values do not depend on who became a guest
    kind, cost, region, extension, contractor = (rng.random() for _ in range(5))
    employee_type = (
        None if kind < 0.02 else "Contractor" if kind < 0.09 else "Consultant" if kind < 0.13
        else "Employee"
    )  # fmt: skip
    centre = _COST_CENTRES.get(user["department"] or "", "CC4000")
    country = CODES.get(user["country"], user["country"])
    attrs: dict[str, str | None] = dict.fromkeys(EXTENSION_ATTRIBUTES)
    if not guest:
        attrs["extensionAttribute1"] = centre if cost < 0.8 else None
        attrs["extensionAttribute7"] = _REGIONS.get(country) if region < 0.4 else None
    user["employeeType"] = None if guest else employee_type
    user["onPremisesExtensionAttributes"] = attrs
    if not guest and extension < 0.6:
        user[COST_CENTER] = centre
    if not guest and employee_type in ("Contractor", "Consultant"):
        user[IS_CONTRACTOR] = True
    elif not guest and employee_type is not None and contractor < 0.5:
        user[IS_CONTRACTOR] = False
