"""Fake Learnster: a SCIM 2.0 service provider (RFC 7643/7644) on loopback, with Learnster's rules.

Why hand-written (and not scim2-server): benchmarks drive ~400 requests/s against 100,000 users
in one process, so the store keeps plain JSON dicts with O(1) indexes (id, lowercase userName,
tag name, externalId, memberships, manager references), validates with a small attribute table
instead of pydantic models, and serialises each response once with ``json``: 10-70 us of CPU per
user request at 100k users. scim2-models is not used at runtime (it is only a dev dependency and
``syncd demo`` runs this fake); the tests check the published schemas against it and run
scim2-tester against the server.

Learnster's documented rules, enforced here, and the scim2-tester checks they fail (the
compliance test's allow-list, ``tests/test_fake_learnster_compliance.py``):

- Phone numbers must be E.164 (``^\\+[1-9]\\d{1,14}$``); anything else is ``400 invalidValue``
  whose ``detail`` names the value. scim2-tester writes random 10-digit numbers, so for User
  these fail: object_replacement, object_query_with_attributes, object_list_with_attributes,
  search_with_attributes and check_remove_attribute (each creates a user with every attribute),
  check_add_attribute and check_replace_attribute on ``phoneNumbers``. ``enforce_e164 = False``
  lifts the rule, for conformance tools only.
- Learnster keeps only the first phone number: ``phoneNumbers`` is stored truncated to its first
  element (a PATCH adding a second number is accepted and the extra number dropped).
- Learnster's "is user active" is a yes/no field: ``active`` defaults to true, and removing it
  sets it back to true (fails scim2-tester's check_remove_attribute on ``active``).
- Groups are tags: a ``displayName`` already used by another group (case-insensitively) gets a
  numbered suffix, ``Sales (2)``, ``Sales (3)``..., instead of ``409 uniqueness``.
- Group members must be existing users (``400 invalidValue`` otherwise); nested groups are not
  tags. The manager's ``value`` must be an existing user id (``400 invalidValue``); the server
  fills in its ``$ref`` and ``displayName``. Deleting a user removes it from its tags and from
  its reports' manager.
- ``userName`` is unique case-insensitively: ``409 uniqueness`` on POST, PUT and PATCH.

Deliberate leniencies and choices (what Entra ID's provisioning expects of a target):

- A PATCH whose value-filtered path (``emails[type eq "work"].value``) matches no element creates
  the element from the filter's ``eq`` terms instead of answering ``400 noTarget``; removing a
  filtered element that is not there succeeds (idempotent member removal).
- ``op`` is case-insensitive, boolean attributes accept the strings ``"True"``/``"False"``, a PATCH
  without ``path`` may carry attribute paths as keys (``name.givenName``), ``add`` on a
  multi-valued attribute merges elements of the same ``type`` (or ``value``), ``remove`` of
  ``members`` with a value list removes those members, and a manager given as a bare id string
  is read as ``{"value": id}``.
- Unknown attributes in POST/PUT bodies are ignored; ``password`` is accepted and discarded
  (Learnster signs in through SSO); ``groups`` on a User is read-only and not returned.
- The manager's ``value`` and ``$ref`` are published ``"required": false`` as in RFC 7643
  §8.7.2's schema (scim2-models marks them required); Entra sends only the value.
- PATCH answers ``200`` with the resource, or ``204`` when ``patch_returns_204`` is set; a write
  that changes nothing keeps the version (ETag). The answer honours ``attributes`` and
  ``excludedAttributes`` (RFC 7644 §3.9) unless ``patch_honours_projection`` is False. Bulk,
  sorting and ``changePassword`` are not supported (ServiceProviderConfig says so).

Fault injection for client tests: ``fail_next``/``drop_next``/``slow_next`` script the next
authorised responses; ``fault_rate`` spreads seeded random faults over 429 (``Retry-After`` as
integer seconds, decimal seconds or an HTTP date), 500, 503, dropped connections and responses
delayed by ``slow_seconds`` (the request is still applied after the delay, as a slow real server
would). ``latency_ms`` is the time from a request's arrival to its answer: the fake's own work
runs inside it, and the wait is outside the lock, so concurrent requests overlap.
"""

from __future__ import annotations

from syncd.fakes.learnster.schema import ENTERPRISE_SCHEMA as ENTERPRISE_SCHEMA
from syncd.fakes.learnster.schema import GROUP as GROUP
from syncd.fakes.learnster.schema import USER as USER
from syncd.fakes.learnster.server import FakeLearnster, LoggedRequest
from syncd.fakes.learnster.values import ScimFault

__all__ = ["FakeLearnster", "LoggedRequest", "ScimFault"]
