"""Helpers shared by the tests that drive a ScimSink directly against a FakeLearnster."""

from __future__ import annotations

import asyncio

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]
