"""The fake Graph's HTTP server: the FakeGraph class, its lifecycle, routing and error envelope."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import ssl
import tempfile
import threading
import uuid
from collections import OrderedDict
from random import Random
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from syncd.fakes._http import LoopbackServer, Request, Response, answer_after
from syncd.fakes.generator import Organisation
from syncd.fakes.graph.app_resources import _AppResources
from syncd.fakes.graph.base import _ApiError, _now_iso
from syncd.fakes.graph.control import LoggedRequest, _Control
from syncd.fakes.graph.delta import _DeltaSession
from syncd.fakes.graph.directory import _Track
from syncd.fakes.graph.faults import _LinkFault, _PageFault
from syncd.fakes.graph.listing import _ListSession
from syncd.fakes.graph.resources import _Resources

# Application permissions that let an app read each kind of resource.
_READ_USERS = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
_READ_GROUPS = frozenset(
    {
        "GroupMember.Read.All", "GroupMember.ReadWrite.All", "Group.Read.All",
        "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All",
    }
)  # fmt: skip
_READ_APPS = frozenset(
    {
        "Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)  # fmt: skip
_READ_ORG = frozenset(
    {
        "Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)  # fmt: skip


class FakeGraph(_Resources, _AppResources, _Control):
    """A faithful fake of Microsoft Graph v1.0 for one tenant, served over real HTTP(S).

    Serves users, groups, members, managers, delta queries, the OAuth2 client-credentials token
    endpoint (a client secret or a certificate's signed assertion) with OpenID discovery, Graph's
    error envelope, and fault injection. The tenant is changed through Python methods or, from
    another process, over HTTP (JSON bodies, no auth):

    - ``POST /_fake/users`` {props} -> {"id"}; ``PATCH /_fake/users/{id}`` {props};
      ``DELETE /_fake/users/{id}`` (hard delete); ``PUT /_fake/users/{id}/manager``
      {"managerId": id|null}; ``POST /_fake/users/{id}/disable|enable|softDelete|restore``
    - ``POST /_fake/users/bulk-update`` [{"id", props}, ...] -> {"updated": n}: many
      ``PATCH /_fake/users/{id}`` in one request (applied in order; stops at the first error)
    - ``POST /_fake/groups`` {props, "memberIds"} -> {"id"}; ``PATCH|DELETE /_fake/groups/{id}``;
      ``POST /_fake/groups/{id}/members`` {"id"}; ``DELETE /_fake/groups/{id}/members/{member}``
    - ``POST /_fake/devices|contacts`` {props, "groupIds"} -> {"id"}
    - ``POST /_fake/servicePrincipals`` {"appId", "displayName", "id"?, "appRoles"?} -> {"id"};
      ``POST /_fake/servicePrincipals/{id}/appRoleAssignedTo`` {"principalId", "appRoleId"?}
      -> {"id"}; ``DELETE /_fake/servicePrincipals/{id}/appRoleAssignedTo/{assignment|principal}``
    - ``POST /_fake/learnsterApp`` {"appId"?, "displayName"?, "assignGroups"?, "assignUsers"?}
      (counts or lists of ids) -> {"id"}
    - ``POST /_fake/expireDeltaTokens``, ``POST /_fake/expireAccessTokens``
    - ``PUT /_fake/faults`` {"rate429", "rate503", "retryAfterSeconds", "emptyPages"};
      ``POST /_fake/failPage`` {"pathPrefix", "page", "status", "times"}; ``DELETE /_fake/faults``
    - ``PUT /_fake/permissions`` {"permissions": [...]}; ``GET|DELETE /_fake/requests``;
      ``GET /_fake/state``
    """

    def __init__(
        self,
        org: Organisation | None = None,
        *,
        tenant_id: str = "contoso.example",
        client_id: str = "11111111-1111-1111-1111-111111111111",
        client_secret: str | None = "graph-secret",  # noqa: S107 - a fake's test secret
        client_certificate: bytes | str | None = None,
        access_token: str | None = None,
        tls: bool = False,
        port: int = 0,
        permissions: set[str] | None = None,
        page_size_max: int = 999,
        delta_page_size: int = 200,
        members_per_page: int = 1000,
        fault_seed: int = 0,
        own_org: bool = False,
    ) -> None:
        """Build the tenant from ``org`` (copied) and bind 127.0.0.1:``port``; call ``start()``.

        ``client_secret=None`` refuses every client secret, so only ``access_token`` (a fixed
        bearer token accepted as-is) works. ``client_certificate`` (PEM; a private key beside the
        certificate is ignored) registers a certificate for the app: the token endpoint then takes
        a client assertion signed with its key (``add_client_certificate`` registers more).
        ``delta_page_size`` is the page size of delta rounds unless the client sends ``Prefer:
        odata.maxpagesize``; ``members_per_page`` is how many member references one delta page
        carries before a big group is continued on the next.
        ``own_org=True`` takes over the dicts of ``org`` instead of copying them (halves the memory
        of a big tenant; ``org`` must not be used afterwards).
        """
        self.tenant_id = tenant_id
        self.tenant_guid = str(uuid.uuid5(uuid.NAMESPACE_DNS, tenant_id))
        self._init_identity(client_id, client_secret, client_certificate, access_token)
        default_permissions = {"User.Read.All", "GroupMember.Read.All"}
        self.permissions = set(permissions if permissions is not None else default_permissions)
        self.page_size_max = page_size_max
        self.delta_page_size = delta_page_size
        self.members_per_page = members_per_page
        # fault injection
        self.fault_rate_429 = 0.0
        self.fault_rate_503 = 0.0
        self.retry_after_seconds = 1
        self.empty_pages = False
        # From a request's arrival to its answer, for every API request (not the control API).
        self.latency_ms = 0.0
        self._fault_rng = Random(fault_seed)
        self._page_faults: list[_PageFault] = []
        self._link_faults: list[_LinkFault] = []

        self._created_at = _now_iso() + "Z"
        self._lock = threading.RLock()
        self._nonce = secrets.token_hex(4)  # tokens from another instance are unknown here
        self._epoch = 0
        self._seq = 0
        self._users: dict[str, dict[str, Any]] = {}
        self._recycle: dict[str, dict[str, Any]] = {}
        self._upn: dict[str, str] = {}
        self._manager_of: dict[str, str] = {}
        self._groups: dict[str, dict[str, Any]] = {}
        self._members: dict[str, dict[str, None]] = {}  # group -> ordered member ids
        self._member_of: dict[str, set[str]] = {}  # member -> groups (reverse index)
        self._others: dict[str, dict[str, Any]] = {}  # devices and contacts
        self._kind: dict[str, str] = {}  # every id ever seen -> @odata.type
        self._service_principals, self._app_ids, self._assignments = {}, {}, {}
        self._user_track: dict[str, _Track] = {}
        self._group_track: dict[str, _Track] = {}
        self._user_log: tuple[list[int], list[str]] = ([], [])
        self._group_log: tuple[list[int], list[str]] = ([], [])
        self._sessions: OrderedDict[str, _DeltaSession | _ListSession] = OrderedDict()
        self._requests: list[LoggedRequest] = []

        self._ca_path: str | None = None
        self.ssl_context: ssl.SSLContext | None = None  # the server's TLS (tls=True)
        ssl_context: ssl.SSLContext | None = None
        if tls:
            ssl_context = self._make_tls()
        self._server = LoopbackServer(self._app, port=port, ssl_context=ssl_context)
        self._started = False
        if org is not None:
            self._load(org, own_org)

    # ------------------------------------------------------------------ lifecycle

    def _make_tls(self) -> ssl.SSLContext:
        import trustme  # only needed for TLS

        ca = trustme.CA()
        # 127.0.0.2 too: tests serve a stranger there that syncd must not send Graph's token to
        # (it would trust it, so only syncd's own checks keep the token home).
        cert = ca.issue_cert("127.0.0.1", "127.0.0.2", "localhost")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        fd, path = tempfile.mkstemp(prefix="fake-graph-ca-", suffix=".pem")
        os.close(fd)
        ca.cert_pem.write_to_path(path)
        self._ca_path = path
        self.ssl_context = ctx
        return ctx

    def start(self) -> FakeGraph:
        """Start serving in a background thread; returns self."""
        if not self._started:
            self._server.start()
            self._started = True
        return self

    def stop(self) -> None:
        """Stop serving and remove the temporary CA file."""
        if self._started:
            self._server.stop()
            self._started = False
        if self._ca_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._ca_path)
            self._ca_path = None

    def __enter__(self) -> FakeGraph:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def authority(self) -> str:
        """The authority host as azure-identity takes it: ``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self._server.port}"

    @property
    def port(self) -> int:
        """The TCP port served."""
        return self._server.port

    @property
    def ca_file(self) -> str | None:
        """PEM file of the test CA when ``tls=True``, else None."""
        return self._ca_path

    # ------------------------------------------------------------------ HTTP plumbing

    @property
    def server(self) -> LoopbackServer:
        """The HTTP server (its ``connections`` and ``peak_in_flight`` counts)."""
        return self._server

    def _app(self, req: Request) -> Response:
        segments = [unquote(s) for s in req.path.split("/") if s]
        if segments and segments[0] == "_fake":
            return self._control(req, segments[1:])
        try:
            response = self._route(req, segments)
        except _ApiError as err:
            response = self._error_response(req, err)
        self._record(req, response.status)
        answer_after(req, self.latency_ms)
        return response

    def _error_response(self, req: Request, err: _ApiError) -> Response:
        client_request_id = req.headers.get("client-request-id") or str(uuid.uuid4())
        request_id = str(uuid.uuid4())
        body = {
            "error": {
                "code": err.code,
                "message": err.message,
                "innerError": {
                    "date": _now_iso(),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }
        headers = {
            "Content-Type": "application/json",
            "request-id": request_id,
            "client-request-id": client_request_id,
            **err.headers,
        }
        return Response(err.status, json.dumps(body).encode(), headers)

    def _route(self, req: Request, seg: list[str]) -> Response:
        if len(seg) >= 2 and seg[1] in ("oauth2", "v2.0"):
            return self._identity(req, seg)
        if not seg or seg[0] != "v1.0":
            raise _ApiError(404, "BadRequest", f"Invalid version or path: {req.path}")
        self._authenticate(req)
        if req.method != "GET":
            raise _ApiError(405, "Request_BadRequest", "The fake Graph only reads the directory.")
        self._inject_rate_faults()
        api = seg[1:]
        head = api[0] if api else ""
        if head == "users":
            self._require(_READ_USERS)
            return self._users_route(req, api[1:])
        if head == "groups":
            self._require(_READ_GROUPS)
            return self._groups_route(req, api[1:])
        if head == "servicePrincipals" or head.startswith("servicePrincipals("):
            self._require(_READ_APPS)
            return self._service_principals_route(req, api)
        if head == "organization" and len(api) == 1:
            self._require(_READ_ORG)
            return self._ok(req, self._organization())
        raise _ApiError(
            400, "BadRequest", f"Resource not found for the segment '{head or req.path}'."
        )
