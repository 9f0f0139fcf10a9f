"""Discovery resources of the fake Learnster (RFC 7644 §4): schemas, resource types, config."""

from __future__ import annotations

from typing import Any

from syncd.fakes._http import Response
from syncd.fakes.learnster.base import _LearnsterBase
from syncd.fakes.learnster.schema import (
    _META_SCHEMAS,
    ENTERPRISE_SCHEMA,
    GROUP,
    GROUP_SCHEMA,
    LIST_SCHEMA,
    RESOURCE_TYPE_SCHEMA,
    SCHEMA_SCHEMA,
    SPC_SCHEMA,
    USER,
    USER_SCHEMA,
)
from syncd.fakes.learnster.values import ScimFault, _now


class _Discovery(_LearnsterBase):
    """ServiceProviderConfig, ResourceTypes and Schemas, built once for the fake's base URL."""

    _discovery: dict[str, Any]

    # ---------------------------------------------------------------- discovery (RFC 7644 §4)

    def _build_discovery(self) -> dict[str, Any]:
        base = self.base_url
        created = _now()

        def meta(resource_type: str, location: str) -> dict[str, str]:
            return {
                "resourceType": resource_type,
                "created": created,
                "lastModified": created,
                "location": f"{base}{location}",
            }

        schemas: dict[str, dict[str, Any]] = {}
        for schema in (USER, GROUP):
            for doc in schema.documents():
                schemas[doc["id"]] = {**doc, "meta": meta("Schema", f"/Schemas/{doc['id']}")}
        for urn, name, attrs in _META_SCHEMAS:
            schemas[urn] = {
                "schemas": [SCHEMA_SCHEMA],
                "id": urn,
                "name": name,
                "description": f"{name} (RFC 7643)",
                "attributes": [a.document() for a in attrs],
                "meta": meta("Schema", f"/Schemas/{urn}"),
            }
        resource_types = {
            "User": {
                "schemas": [RESOURCE_TYPE_SCHEMA],
                "id": "User",
                "name": "User",
                "endpoint": "/Users",
                "description": "Learnster user account",
                "schema": USER_SCHEMA,
                "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": False}],
                "meta": meta("ResourceType", "/ResourceTypes/User"),
            },
            "Group": {
                "schemas": [RESOURCE_TYPE_SCHEMA],
                "id": "Group",
                "name": "Group",
                "endpoint": "/Groups",
                "description": "Learnster tag",
                "schema": GROUP_SCHEMA,
                "meta": meta("ResourceType", "/ResourceTypes/Group"),
            },
        }
        config = {
            "schemas": [SPC_SCHEMA],
            "documentationUri": "https://support.learnster.com/",
            "patch": {"supported": True},
            "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": True, "maxResults": self.page_size_max},
            "changePassword": {"supported": False},
            "sort": {"supported": False},
            "etag": {"supported": True},
            "authenticationSchemes": [
                {
                    "type": "oauthbearertoken",
                    "name": "Secret Token",
                    "description": "The Secret Token from Learnster Studio, as a bearer token",
                    "primary": True,
                }
            ],
            "meta": meta("ServiceProviderConfig", "/ServiceProviderConfig"),
        }
        return {"schemas": schemas, "resourceTypes": resource_types, "config": config}

    def _discovery_response(self, parts: list[str]) -> Response:
        head = parts[0]
        if head == "ServiceProviderConfig":
            if len(parts) != 1:
                raise ScimFault(404, "no such endpoint")
            return self._json(self._discovery["config"])
        table: dict[str, Any] = self._discovery["schemas" if head == "Schemas" else "resourceTypes"]
        if len(parts) == 1:
            items = list(table.values())
            return self._json(
                {
                    "schemas": [LIST_SCHEMA],
                    "totalResults": len(items),
                    "itemsPerPage": len(items),
                    "startIndex": 1,
                    "Resources": items,
                }
            )
        if len(parts) == 2 and parts[1] in table:
            return self._json(table[parts[1]])
        raise ScimFault(404, f"{head[:-1]} {parts[-1]!r} not found")
