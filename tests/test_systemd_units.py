"""The shipped systemd units verify and are hardened (systemd-analyze, offline)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).parent.parent / "systemd"
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def installed_copy(tmp_path: Path, name: str) -> Path:
    """The unit as installed: ExecStart pointing at this environment's syncd."""
    syncd = Path(sys.executable).parent / "syncd"
    text = (UNITS / name).read_text().replace("/opt/syncd/bin/syncd", str(syncd))
    target = tmp_path / name
    target.write_text(text)
    return target


def test_units_verify(tmp_path: Path) -> None:
    units = [installed_copy(tmp_path, n) for n in ("syncd.service", "syncd-once.service")]
    units.append(installed_copy(tmp_path, "syncd.timer"))
    result = subprocess.run(
        [str(ANALYZE), "verify", *map(str, units)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "syncd" not in result.stderr, result.stderr  # no warning about our units


@pytest.mark.parametrize("name", ["syncd.service", "syncd-once.service"])
def test_exposure_is_at_most_1_5(tmp_path: Path, name: str) -> None:
    unit = installed_copy(tmp_path, name)
    result = subprocess.run(
        [str(ANALYZE), "security", "--offline=true", str(unit)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 1.5


def test_the_daemon_unit_has_what_the_daemon_relies_on() -> None:
    text = (UNITS / "syncd.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "StateDirectory=syncd",
        "LoadCredential=graph-client-secret:",
        "LoadCredential=learnster-token:",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "DynamicUser=yes",
    ):
        assert line in text
