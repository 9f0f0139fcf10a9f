"""`syncd status --drift`: changes made directly in Learnster are listed (issue 4)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from syncd.app.cli import main
from tests.conftest import Harness


def test_drift_lists_changes_made_in_learnster_and_nothing_else(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = make_harness(users=30)
    h.sync()
    capsys.readouterr()
    assert main(["status", "--drift", "--config", str(h.config_path)]) == 0
    assert "no drift: Learnster holds what syncd sent" in capsys.readouterr().out

    users = [u for u in h.graph.users if u.get("accountEnabled")]
    edited, removed = users[0], users[1]
    edited_id = h.learnster.user_by_username(edited["userPrincipalName"])["id"]  # type: ignore[index]
    removed_id = h.learnster.user_by_username(removed["userPrincipalName"])["id"]  # type: ignore[index]
    h.learnster.users[edited_id]["title"] = "Edited by hand"
    h.learnster.users[edited_id]["nickName"] = "not ours"  # never sent by syncd: not drift
    del h.learnster.users[removed_id]
    capsys.readouterr()
    assert main(["status", "--drift", "--json", "--config", str(h.config_path)]) == 0
    drift = json.loads(capsys.readouterr().out)["drift"]
    by_object = {(d["object_id"], d["path"]): d for d in drift}
    assert by_object[(edited["id"], "title")]["found"] == "Edited by hand"
    assert by_object[(edited["id"], "title")]["sent"] == edited["jobTitle"]
    assert by_object[(removed["id"], "(user)")]["found"] == "deleted in Learnster"
    assert {d["object_id"] for d in drift} == {edited["id"], removed["id"]}

    assert main(["status", "--drift", "--config", str(h.config_path)]) == 0
    out = capsys.readouterr().out
    assert f"user {edited['userPrincipalName']} ({edited['id']}) title" in out
    assert "Learnster has Edited by hand" in out
