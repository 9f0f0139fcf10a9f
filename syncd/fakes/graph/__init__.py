"""Fake Microsoft Graph v1.0 tenant (users, groups, delta, OAuth2 client credentials) on loopback."""

from __future__ import annotations

from syncd.fakes.graph.control import LoggedRequest
from syncd.fakes.graph.server import FakeGraph

__all__ = ["FakeGraph", "LoggedRequest"]
