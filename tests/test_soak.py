"""A short soak (``benchmarks/soak.py``): ``syncd run --every 1`` while the tenant changes and
faults come; Learnster ends as the mapping says, and the daemon's open files did not grow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.soak import main as soak


@pytest.mark.slow
def test_a_short_soak_converges_and_leaks_no_file_descriptor(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    args = ["--cycles", "10", "--every", "1", "--users", "60", "--baseline", "3"]
    args += ["--changes", "4", "--fault-share", "0.6", "--seed", "5", "--settle-timeout", "120"]
    args += ["--out", str(out)]
    assert soak(args) == 0
    document = json.loads(out.read_text())
    assert all(document["checks"].values()), document["checks"]
    assert document["learnster_problems"] == []
    assert document["cycles"]["soak"] == 10
    assert document["settle"]["converged"]
    assert sum(document["faults_injected"].values()) >= 3
    assert document["faults_met"]  # the fakes did answer with faults
    assert sum(document["changes"].values()) >= 30
    process = document["process"]
    assert process["last"]["fds"] <= process["baseline"]["fds"]
    assert document["daemon_stop"]["exit_code"] == 0
    assert document["log"]["rows_older_than_log_days"] == 0
