"""The fake tenant's service principals and the app role assignments granted for them."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from random import Random
from typing import Any

from syncd.fakes.graph.directory import _Directory
from syncd.fakes.graph.properties import GROUP, USER

SERVICE_PRINCIPAL = "#microsoft.graph.servicePrincipal"
# The app role id that assigns a principal to an app without a role of its own.
DEFAULT_ROLE = "00000000-0000-0000-0000-000000000000"
LEARNSTER_APP_ID = "5e7c8d2a-4b1f-4f6e-9a3d-2c8b7e1f0a64"  # the fake's Learnster application
SERVICE_PRINCIPAL_PROPERTIES: tuple[str, ...] = (
    "id", "deletedDateTime", "accountEnabled", "alternativeNames", "appDescription",
    "appDisplayName", "appId", "applicationTemplateId", "appOwnerOrganizationId",
    "appRoleAssignmentRequired", "appRoles", "description", "disabledByMicrosoftStatus",
    "displayName", "homepage", "loginUrl", "logoutUrl", "notes", "notificationEmailAddresses",
    "oauth2PermissionScopes", "preferredSingleSignOnMode", "replyUrls", "servicePrincipalNames",
    "servicePrincipalType", "signInAudience", "tags",
)  # fmt: skip
ASSIGNMENT_PROPERTIES: tuple[str, ...] = (
    "id", "deletedDateTime", "appRoleId", "createdDateTime", "principalDisplayName",
    "principalId", "principalType", "resourceDisplayName", "resourceId",
)  # fmt: skip
_PRINCIPAL_TYPES = {USER: "User", GROUP: "Group", SERVICE_PRINCIPAL: "ServicePrincipal"}


@dataclass(frozen=True, slots=True)
class _Assignment:
    id: str
    principal: str
    role: str
    created: str


def _assignment_id(principal: str) -> str:
    """Graph's form: the principal's id (GUID bytes, little-endian) and 16 more bytes, base64url."""
    raw = uuid.UUID(principal).bytes_le + uuid.uuid4().bytes
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _app_role(role: dict[str, Any]) -> dict[str, Any]:
    """An appRole as Graph shows it; ``role`` needs at least ``value`` (and may give ``id``)."""
    value = str(role["value"])
    return {
        "allowedMemberTypes": ["User"],
        "description": value,
        "displayName": value,
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"approle:{value}")),
        "isEnabled": True,
        "origin": "Application",
        **role,
    }


class _Apps(_Directory):
    """Service principals, their app role assignments, and what deletions do to those."""

    _service_principals: dict[str, dict[str, Any]]
    _app_ids: dict[str, str]  # appId (lowercase) -> service principal id
    _assignments: dict[str, dict[str, _Assignment]]  # service principal -> assignments, in order

    def add_service_principal(
        self,
        app_id: str,
        display_name: str,
        *,
        id: str | None = None,
        app_roles: Sequence[dict[str, Any]] = (),
    ) -> str:
        """Create the service principal of application ``app_id``; returns its object id."""
        app_id = str(uuid.UUID(app_id))
        sp_id = str(uuid.UUID(id)) if id else str(uuid.uuid4())
        with self._lock:
            if app_id in self._app_ids:
                raise ValueError(f"a service principal for appId {app_id} already exists")
            if sp_id in self._kind:
                raise ValueError(f"id {sp_id} already exists")
            sp: dict[str, Any] = dict.fromkeys(SERVICE_PRINCIPAL_PROPERTIES)
            sp.update(
                id=sp_id,
                accountEnabled=True,
                alternativeNames=[],
                appDisplayName=display_name,
                appId=app_id,
                appOwnerOrganizationId=self.tenant_guid,
                appRoleAssignmentRequired=True,
                appRoles=[_app_role(r) for r in app_roles],
                displayName=display_name,
                notificationEmailAddresses=[],
                oauth2PermissionScopes=[],
                replyUrls=[],
                servicePrincipalNames=[app_id],
                servicePrincipalType="Application",
                signInAudience="AzureADMyOrg",
                tags=["WindowsAzureActiveDirectoryIntegratedApp"],
            )
            self._service_principals[sp_id] = sp
            self._app_ids[app_id] = sp_id
            self._assignments[sp_id] = {}
            self._kind[sp_id] = SERVICE_PRINCIPAL
            return sp_id

    def assign(self, sp_id: str, principal_id: str, *, app_role_id: str = DEFAULT_ROLE) -> str:
        """Grant a user, group or service principal an app role of ``sp_id``; the assignment id."""
        with self._lock:
            sp = self._service_principals.get(sp_id)
            if sp is None:
                raise KeyError(sp_id)
            if self._principal_type(principal_id) is None:
                raise KeyError(principal_id)
            roles = {DEFAULT_ROLE} | {r["id"] for r in sp["appRoles"]}
            if app_role_id not in roles:
                raise ValueError(f"app role {app_role_id} is not one of {sp['displayName']}'s")
            assignments = self._assignments[sp_id]
            if any(
                a.principal == principal_id and a.role == app_role_id for a in assignments.values()
            ):
                raise ValueError("Permission being assigned already exists on the object")
            created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
            assignment = _Assignment(
                _assignment_id(principal_id), principal_id, app_role_id, created
            )
            assignments[assignment.id] = assignment
            return assignment.id

    def unassign(self, sp_id: str, assignment_or_principal_id: str) -> None:
        """Remove one assignment by its id, or every assignment of a principal by the principal's."""
        with self._lock:
            assignments = self._assignments.get(sp_id)
            if assignments is None:
                raise KeyError(sp_id)
            key = assignment_or_principal_id
            gone = [a for a in assignments.values() if key in (a.id, a.principal)]
            if not gone:
                raise KeyError(key)
            for assignment in gone:
                del assignments[assignment.id]

    def app_role_assigned_to(self, sp_id: str) -> list[dict[str, Any]]:
        """The assignments Graph lists for ``sp_id`` now (for tests), oldest first."""
        with self._lock:
            if sp_id not in self._assignments:
                raise KeyError(sp_id)
            rendered = (self._render_assignment(sp_id, a) for a in self._listed(sp_id))
            return [body for body in rendered if body is not None]

    def add_learnster_app(
        self,
        app_id: str = LEARNSTER_APP_ID,
        *,
        display_name: str = "Learnster",
        assign_groups: int | Iterable[str] = 3,
        assign_users: int | Iterable[str] = 5,
    ) -> str:
        """Learnster's service principal with groups and users assigned (ids, or how many).

        A count picks that many of the tenant's groups and users, the same for the same tenant
        and ``app_id``. Returns the service principal's id.
        """
        with self._lock:
            pick = Random(f"learnster:{app_id}")
            groups = _chosen(pick, list(self._groups), assign_groups)
            users = _chosen(pick, list(self._users), assign_users)
            sp_id = self.add_service_principal(app_id, display_name)
            for principal in [*groups, *users]:
                self.assign(sp_id, principal)
            return sp_id

    # ------------------------------------------------------------------ state Graph derives

    def _principal_type(self, oid: str) -> str | None:
        """ "User", "Group" or "ServicePrincipal" for a live principal, else None."""
        if oid in self._users or oid in self._groups or oid in self._service_principals:
            return _PRINCIPAL_TYPES[self._kind[oid]]
        return None

    def _listed(self, sp_id: str) -> list[str]:
        # a principal in the recycle bin keeps its assignments, but they are not listed until
        # it is restored
        return [
            a.id
            for a in self._assignments.get(sp_id, {}).values()
            if self._principal_type(a.principal) is not None
        ]

    def _principal_gone(self, oid: str) -> None:
        """A principal deleted for good takes its app role assignments with it."""
        for assignments in self._assignments.values():
            for assignment in [a for a in assignments.values() if a.principal == oid]:
                del assignments[assignment.id]

    def _render_assignment(self, sp_id: str, assignment_id: str) -> dict[str, Any] | None:
        assignment = self._assignments.get(sp_id, {}).get(assignment_id)
        kind = None if assignment is None else self._principal_type(assignment.principal)
        if assignment is None or kind is None:
            return None
        principal = (
            self._users.get(assignment.principal)
            or self._groups.get(assignment.principal)
            or self._service_principals[assignment.principal]
        )
        resource = self._service_principals[sp_id]
        return {
            "id": assignment.id,
            "deletedDateTime": None,
            "appRoleId": assignment.role,
            "createdDateTime": assignment.created,
            "principalDisplayName": principal.get("displayName"),
            "principalId": assignment.principal,
            "principalType": kind,
            "resourceDisplayName": resource["displayName"],
            "resourceId": sp_id,
        }


def _chosen(rng: Random, ids: list[str], wanted: int | Iterable[str]) -> list[str]:
    if isinstance(wanted, int):
        return rng.sample(ids, min(wanted, len(ids)))
    return list(wanted)
