"""``make bench --scope assigned``: the same tenant with an assigned scope and two filters.

The fake Graph gets the Learnster app (every office group and ten users assigned, so most of
the tenant is in scope) and the permission to read it; syncd's configuration gets
``[scope] mode = "assigned"`` and two ``[[scope.filter]]`` tables. Compare with a bench of the
same tenant without them (``--guests``, which ``--scope assigned`` implies).
"""

from __future__ import annotations

from benchmarks.tenant import control_url, graph_list, http_json

LEARNSTER_APP_ID = "5e7c8d2a-4b1f-4f6e-9a3d-2c8b7e1f0a64"  # the fake's own Learnster app
PERMISSIONS = ["User.Read.All", "GroupMember.Read.All", "Application.Read.All"]
ASSIGNED_USERS = 10

SCOPE_TOML = f"""
[scope]
mode = "assigned"
application = "{LEARNSTER_APP_ID}"

[[scope.filter]]
clauses = [
  {{ attribute = "userType", operator = "NOT EQUALS", value = "Guest" }},
  {{ attribute = "employeeType", operator = "NOT EQUALS", value = "Consultant" }},
]

[[scope.filter]]
clauses = [
  {{ attribute = "onPremisesExtensionAttributes.extensionAttribute7", operator = "IS NOT NULL" }},
]
"""


def assign_offices(graph_url: str) -> int:
    """The Learnster app with every office group and a few users assigned; how many groups."""
    http_json(
        control_url(graph_url, "permissions"), method="PUT", body={"permissions": PERMISSIONS}
    )
    offices = [
        g["id"]
        for g in graph_list(f"{graph_url}/groups?$select=id,displayName&$top=999")
        if str(g.get("displayName", "")).startswith("Office ")
    ]
    body = {"appId": LEARNSTER_APP_ID, "assignGroups": offices, "assignUsers": ASSIGNED_USERS}
    http_json(control_url(graph_url, "learnsterApp"), method="POST", body=body)
    return len(offices)
