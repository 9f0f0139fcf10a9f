"""`syncd demo`: the whole product on the built-in fake tenants, three cycles, no account."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from syncd.app.demo import run_demo


def test_the_demo_provisions_the_assigned_scope_then_the_changes_then_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("SYNCD_GRAPH_CLIENT_SECRET", "SYNCD_LEARNSTER_TOKEN"):
        monkeypatch.delenv(name, raising=False)  # the demo sets its own
    out = io.StringIO()
    assert run_demo(users=80, seed=7, console=Console(file=out, width=120)) == 0
    text = out.getvalue()
    assert "office groups and 2 users assigned to the Learnster app" in text
    first, second, third = (text.split(f"cycle {n}: ")[1] for n in (1, 2, 3))
    assert "create_user" in first.split("cycle 2:")[0]
    assert "PATCH /Users" in second.split("cycle 3:")[0]
    assert "nothing to send: Learnster already matches the directory" in third
