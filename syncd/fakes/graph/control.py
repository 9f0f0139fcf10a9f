"""The fake Graph's control API (``/_fake``) and its log of the requests it answered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from syncd.fakes._http import Request, Response
from syncd.fakes.graph.apps import DEFAULT_ROLE, LEARNSTER_APP_ID, _Apps
from syncd.fakes.graph.delta import _Delta
from syncd.fakes.graph.identity import _Identity


@dataclass(frozen=True)
class LoggedRequest:
    """One request the fake answered (the Authorization header is never kept)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    headers: dict[str, str] = field(default_factory=dict)


_USER_ACTIONS = {
    "disable": "disable_user",
    "enable": "enable_user",
    "softDelete": "soft_delete_user",
    "restore": "restore_user",
}


class _Control(_Delta, _Apps, _Identity):
    """Changes to the tenant from another process (over HTTP) and the request log."""

    _requests: list[LoggedRequest]

    @property
    def requests(self) -> list[LoggedRequest]:
        """A copy of the request log (oldest first)."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the request log."""
        with self._lock:
            self._requests.clear()

    def _record(self, req: Request, status: int) -> None:
        headers = {k: v for k, v in req.headers.items() if k != "authorization"}
        with self._lock:
            self._requests.append(LoggedRequest(req.method, req.path, req.query, status, headers))

    # ------------------------------------------------------------------ control API (/_fake)

    def _control(self, req: Request, seg: list[str]) -> Response:
        try:
            body = req.json()
        except ValueError:
            return Response.json({"error": "body is not JSON"}, 400)
        if body is None:
            body = {}
        try:
            result = self._control_dispatch(req.method, seg, body)
        except KeyError as exc:
            return Response.json({"error": f"not found: {exc.args[0]}"}, 404)
        except (ValueError, TypeError) as exc:
            return Response.json({"error": str(exc)}, 400)
        if result is None:
            return Response(204)
        return Response.json(result, 201 if req.method == "POST" else 200)

    def _bulk_update_users(self, updates: Any) -> int:
        if not isinstance(updates, list) or not all(isinstance(u, dict) for u in updates):
            raise TypeError("bulk-update takes a JSON list of objects with an 'id'")
        with self._lock:
            for update in updates:
                props = dict(update)
                uid = props.pop("id", None)
                if not isinstance(uid, str):
                    raise ValueError(f"bulk-update entry without a string 'id': {update!r}")
                self.update_user(uid, **props)
        return len(updates)

    def _control_dispatch(self, method: str, seg: list[str], body: Any) -> Any:
        route = (method, *seg)
        match route:
            case ("POST", "users"):
                return {"id": self.add_user(body)}
            case ("PATCH", "users", uid):
                self.update_user(uid, **body)
            case ("POST", "users", "bulk-update"):
                return {"updated": self._bulk_update_users(body)}
            case ("DELETE", "users", uid):
                self.hard_delete_user(uid)
            case ("PUT", "users", uid, "manager"):
                self.set_manager(uid, body.get("managerId"))
            case ("POST", "users", uid, action) if action in _USER_ACTIONS:
                getattr(self, _USER_ACTIONS[action])(uid)
            case ("POST", "groups"):
                props = dict(body)
                members = props.pop("memberIds", [])
                return {"id": self.add_group(props, members)}
            case ("PATCH", "groups", gid):
                self.update_group(gid, **body)
            case ("DELETE", "groups", gid):
                self.delete_group(gid)
            case ("POST", "groups", gid, "members"):
                self.add_member(gid, body["id"])
            case ("DELETE", "groups", gid, "members", mid):
                self.remove_member(gid, mid)
            case ("POST" | "DELETE", "servicePrincipals" | "learnsterApp", *_):
                return self._control_apps(route, body)
            case ("POST", "devices" | "contacts" as what):
                props = dict(body)
                group_ids = props.pop("groupIds", [])
                add = self.add_device if what == "devices" else self.add_contact
                return {"id": add(props, group_ids)}
            case ("POST", "expireDeltaTokens"):
                self.expire_delta_tokens()
            case ("POST", "expireAccessTokens"):
                self.expire_access_tokens()
            case ("PUT", "faults"):
                with self._lock:
                    self.fault_rate_429 = float(body.get("rate429", self.fault_rate_429))
                    self.fault_rate_503 = float(body.get("rate503", self.fault_rate_503))
                    self.retry_after_seconds = int(
                        body.get("retryAfterSeconds", self.retry_after_seconds)
                    )
                    self.empty_pages = bool(body.get("emptyPages", self.empty_pages))
            case ("DELETE", "faults"):
                self.clear_faults()
            case ("POST", "failPage"):
                times = body.get("times", 1)
                self.fail_page(
                    str(body["pathPrefix"]),
                    int(body["page"]),
                    int(body.get("status", 500)),
                    times=None if times is None else int(times),
                )
            case ("PUT", "permissions"):
                with self._lock:
                    self.permissions = set(body["permissions"])
            case ("GET", "requests"):
                return [r.__dict__ for r in self.requests]
            case ("DELETE", "requests"):
                self.clear_requests()
            case ("GET", "state"):
                with self._lock:
                    return {
                        "users": len(self._users),
                        "recycleBin": len(self._recycle),
                        "groups": len(self._groups),
                        "servicePrincipals": len(self._service_principals),
                        "sequence": self._seq,
                    }
            case _:
                raise KeyError("/_fake/" + "/".join(seg))
        return None

    def _control_apps(self, route: tuple[str, ...], body: Any) -> Any:
        match route:
            case ("POST", "servicePrincipals"):
                app_id = str(body["appId"])
                sp_id = self.add_service_principal(
                    app_id,
                    str(body.get("displayName") or app_id),
                    id=body.get("id"),
                    app_roles=body.get("appRoles", ()),
                )
                return {"id": sp_id}
            case ("POST", "servicePrincipals", sp_id, "appRoleAssignedTo"):
                role = str(body.get("appRoleId", DEFAULT_ROLE))
                return {"id": self.assign(sp_id, str(body["principalId"]), app_role_id=role)}
            case ("DELETE", "servicePrincipals", sp_id, "appRoleAssignedTo", key):
                self.unassign(sp_id, key)
            case ("POST", "learnsterApp"):
                sp_id = self.add_learnster_app(
                    str(body.get("appId", LEARNSTER_APP_ID)),
                    display_name=str(body.get("displayName", "Learnster")),
                    assign_groups=body.get("assignGroups", 3),
                    assign_users=body.get("assignUsers", 5),
                )
                return {"id": sp_id}
            case _:
                raise KeyError("/_fake/" + "/".join(route[1:]))
        return None
