"""The shipped systemd units verify and are hardened (systemd-analyze, offline).

Template units are checked as an instance (``syncd@acme.service``): a unit of that name is what
systemd loads. systemd-analyze 252 also takes the template file itself (``security`` then
names it ``syncd@i.service``), but verifying the instance is what runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from syncd.app.install import PLAIN_UNITS, TEMPLATE_UNITS, shipped_file, unit_text

ROOT = Path(__file__).parent.parent
UNITS = ROOT / "syncd" / "share" / "systemd"
ANALYZE = shutil.which("systemd-analyze")
SERVICES = [
    "syncd.service",
    "syncd-once.service",
    "syncd@.service",
    "syncd-once@.service",
]
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def installed_copy(tmp_path: Path, name: str, instance: str = "acme") -> Path:
    """The unit as `syncd install` writes it (ExecStart: this environment's syncd); a template
    under its instance's name."""
    text = unit_text(name, str(Path(sys.executable).parent / "syncd"))
    target = tmp_path / name.replace("@.", f"@{instance}.")
    target.write_text(text)
    return target


@needs_analyze
@pytest.mark.parametrize("units", [PLAIN_UNITS, TEMPLATE_UNITS], ids=["plain", "template"])
def test_units_verify(tmp_path: Path, units: tuple[str, ...]) -> None:
    paths = [installed_copy(tmp_path, n) for n in units]
    result = subprocess.run(
        [str(ANALYZE), "verify", *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "syncd" not in result.stderr, result.stderr  # no warning about our units


@needs_analyze
@pytest.mark.parametrize("name", SERVICES)
def test_exposure_is_at_most_1_5(tmp_path: Path, name: str) -> None:
    # Measured with systemd 252: 1.1 for each of the four.
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


def test_the_daemon_units_have_what_the_daemon_relies_on() -> None:
    for name in ("syncd.service", "syncd@.service"):
        text = shipped_file(name)
        for line in (
            "Type=notify",
            "WatchdogSec=",
            "StateDirectory=syncd",
            "LoadCredential=graph-client-secret:",
            "LoadCredential=learnster-token:",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "DynamicUser=yes",
        ):
            assert line in text, (name, line)


def _hardening(text: str) -> str:
    return text[text.index("CapabilityBoundingSet=") : text.index("KeyringMode=private")]


def test_every_service_has_the_same_hardening() -> None:
    blocks = {name: _hardening(shipped_file(name)) for name in SERVICES}
    assert len(set(blocks.values())) == 1, blocks


@pytest.mark.parametrize("name", ["syncd@.service", "syncd-once@.service"])
def test_a_template_takes_everything_of_its_own_from_the_instance_name(name: str) -> None:
    text = shipped_file(name)
    command = "run" if name == "syncd@.service" else "sync"
    for line in (
        f"ExecStart=/opt/syncd/bin/syncd {command} --config /etc/syncd/%i.toml",
        "Environment=SYNCD_CONFIG=/etc/syncd/%i.toml",
        "StateDirectory=syncd/%i\n",
        "LoadCredential=graph-client-secret:/etc/syncd/credentials/%i/graph-client-secret",
        "LoadCredential=learnster-token:/etc/syncd/credentials/%i/learnster-token",
    ):
        assert line in text, line
    # %I would turn '-' in an instance name into '/': only the name as it is, %i, is used.
    assert "%I" not in text


def test_each_timer_starts_a_shipped_one_shot_service() -> None:
    assert "Unit=syncd-once.service\n" in shipped_file("syncd.timer")
    assert "Unit=syncd-once@%i.service\n" in shipped_file("syncd-once@.timer")
    assert {"syncd-once.service", "syncd-once@.service"} <= {p.name for p in UNITS.iterdir()}


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="links of a git checkout (no sdist's)")
def test_the_checkout_paths_are_links_to_the_packaged_files() -> None:
    """systemd/ and config/ (README, DESIGN.md) are the files the wheel carries, not copies."""
    assert (ROOT / "systemd").resolve() == UNITS.resolve()
    example = ROOT / "config" / "syncd.example.toml"
    assert example.resolve() == (ROOT / "syncd" / "share" / "config" / example.name).resolve()
    assert sorted(p.name for p in UNITS.iterdir()) == sorted(PLAIN_UNITS + TEMPLATE_UNITS)
