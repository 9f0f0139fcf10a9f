"""`syncd install`: units, configuration and credentials directory under --root, never clobbering."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from syncd.app.cli import main
from syncd.app.install import PLAIN_UNITS, TEMPLATE_UNITS, shipped_file, unit_text
from syncd.config import load_config

SYNCD = str(Path(sys.executable).parent / "syncd")  # what the units run when pytest runs them


def install(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["install", "--root", str(root), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_one_instance_gets_the_plain_units_the_example_and_a_private_credentials_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = install(tmp_path, capsys)
    assert code == 0
    for name in PLAIN_UNITS:
        unit = tmp_path / "etc/systemd/system" / name
        assert unit.read_text() == unit_text(name, SYNCD)
        assert unit.stat().st_mode & 0o777 == 0o644
    assert f"ExecStart={SYNCD} run --config /etc/syncd/syncd.toml" in unit_text(
        "syncd.service", SYNCD
    )
    assert (tmp_path / "etc/syncd/syncd.toml").read_text() == shipped_file("syncd.example.toml")
    credentials = tmp_path / "etc/syncd/credentials"
    assert credentials.is_dir()
    assert credentials.stat().st_mode & 0o777 == 0o700
    assert not list((tmp_path / "etc/systemd/system").glob("*@*"))
    for step in (
        "> /etc/syncd/credentials/graph-client-secret",
        "> /etc/syncd/credentials/learnster-token",
        "systemctl daemon-reload",
        "systemctl enable --now syncd.timer",
        "systemctl enable --now syncd.service",
    ):
        assert step in out, step


def test_an_instance_gets_the_template_units_and_its_own_config_state_and_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = install(tmp_path, capsys, "--instance", "acme")
    assert code == 0
    for name in TEMPLATE_UNITS:
        assert (tmp_path / "etc/systemd/system" / name).read_text() == unit_text(name, SYNCD)
    assert not (tmp_path / "etc/systemd/system/syncd.service").exists()
    config = tmp_path / "etc/syncd/acme.toml"
    assert tomllib.loads(config.read_text())["state"]["database"] == (
        "/var/lib/syncd/acme/state.db"
    )
    assert load_config(str(config)).state_database == "/var/lib/syncd/acme/state.db"
    credentials = tmp_path / "etc/syncd/credentials/acme"
    assert credentials.stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "etc/syncd/credentials").stat().st_mode & 0o777 == 0o700
    for step in (
        "printf %s 'CLIENT-SECRET-VALUE'    > /etc/syncd/credentials/acme/graph-client-secret",
        "> /etc/syncd/credentials/acme/learnster-token",
        "/etc/syncd/acme.toml",
        "systemctl daemon-reload",
        "systemctl enable --now syncd-once@acme.timer",
        "systemctl enable --now syncd@acme.service",
    ):
        assert step in out, step

    # A second instance shares the template units and adds its own files.
    code, out, _ = install(tmp_path, capsys, "--instance", "globex")
    assert code == 0
    for name in TEMPLATE_UNITS:
        assert f"unchanged              {tmp_path}/etc/systemd/system/{name}\n" in out
    assert (tmp_path / "etc/syncd/globex.toml").exists()
    assert (tmp_path / "etc/syncd/acme.toml").read_text() == config.read_text().replace(
        "globex", "acme"
    )


def test_running_it_again_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert install(tmp_path, capsys, "--instance", "acme")[0] == 0
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}
    code, out, _ = install(tmp_path, capsys, "--instance", "acme")
    assert code == 0
    assert out.count("unchanged") == len(TEMPLATE_UNITS) + 2  # the units, config, credentials
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


def test_a_changed_file_is_not_replaced_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert install(tmp_path, capsys)[0] == 0
    unit = tmp_path / "etc/systemd/system/syncd.service"
    unit.write_text(unit.read_text().replace("RestartSec=30s", "RestartSec=5s"))
    (tmp_path / "etc/systemd/system/syncd.timer").unlink()
    code, out, err = install(tmp_path, capsys)
    assert code == 2
    assert f"{unit} differs from what syncd install writes" in err
    assert "Nothing was written" in err
    assert "--force" in err
    assert "--units-only" not in err  # the configuration is as written
    assert "RestartSec=5s" in unit.read_text()
    assert not (tmp_path / "etc/systemd/system/syncd.timer").exists()
    assert out == ""


def test_force_replaces_what_differs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert install(tmp_path, capsys)[0] == 0
    unit = tmp_path / "etc/systemd/system/syncd-once.service"
    unit.write_text("edited\n")
    credentials = tmp_path / "etc/syncd/credentials"
    credentials.chmod(0o755)
    code, _, err = install(tmp_path, capsys)
    assert code == 2
    assert f"{credentials} has mode 0755, not 0700" in err
    assert f"{unit} differs" in err
    assert "replace them" in err
    code, out, _ = install(tmp_path, capsys, "--force")
    assert code == 0
    assert f"replaced               {unit}" in out
    assert unit.read_text() == unit_text("syncd-once.service", SYNCD)
    assert credentials.stat().st_mode & 0o777 == 0o700


def test_an_edited_configuration_is_kept_with_units_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert install(tmp_path, capsys, "--instance", "acme")[0] == 0
    config = tmp_path / "etc/syncd/acme.toml"
    edited = config.read_text().replace("contoso.onmicrosoft.com", "acme.onmicrosoft.com")
    config.write_text(edited)
    unit = tmp_path / "etc/systemd/system/syncd@.service"
    unit.write_text("an older syncd's unit\n")
    code, _, err = install(tmp_path, capsys, "--instance", "acme")
    assert code == 2
    assert f"{config} differs" in err
    assert "--units-only" in err
    code, out, _ = install(tmp_path, capsys, "--instance", "acme", "--units-only", "--force")
    assert code == 0
    assert config.read_text() == edited
    assert unit.read_text() == unit_text("syncd@.service", SYNCD)
    assert "systemctl try-restart syncd@acme.service" in out


def test_a_link_in_the_way_is_replaced_not_written_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere.service"
    elsewhere.write_text("someone else's unit\n")
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/syncd.service").symlink_to(elsewhere)
    assert install(root, capsys)[0] == 2
    assert install(root, capsys, "--force")[0] == 0
    assert not (root / "etc/systemd/system/syncd.service").is_symlink()
    assert elsewhere.read_text() == "someone else's unit\n"


@pytest.mark.parametrize(
    "name", ["a/b", "-acme", ".acme", "", "ac me", "ac%me", "ac\\x2dme", "é", "x" * 65, "syncd"]
)
def test_a_bad_instance_name_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, out, err = install(tmp_path, capsys, f"--instance={name}")  # "-acme" as a value
    assert code == 2
    assert f"--instance {name!r}" in err
    assert out == ""
    assert not (tmp_path / "etc").exists()


@pytest.mark.parametrize("name", ["acme", "Globex-2", "eu.west_1", "9"])
def test_a_good_instance_name_is_taken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    assert install(tmp_path, capsys, "--instance", name)[0] == 0
    assert (tmp_path / f"etc/syncd/{name}.toml").exists()


def test_executable_names_what_the_units_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = install(tmp_path, capsys, "--executable", "/opt/syncd/bin/syncd")
    assert code == 0
    assert err == ""
    unit = (tmp_path / "etc/systemd/system/syncd.service").read_text()
    assert "ExecStart=/opt/syncd/bin/syncd run --config /etc/syncd/syncd.toml" in unit
    code, _, err = install(tmp_path / "b", capsys, "--executable", "/home/ops/.local/bin/syncd")
    assert code == 0
    assert "warning" in err
    assert "ProtectHome=yes" in err
    for bad in ("syncd", "/opt/my syncd/bin/syncd", "/opt/%n/syncd", "/opt/$HOME/syncd"):
        code, _, err = install(tmp_path / "c", capsys, "--executable", bad)
        assert code == 2
        assert f"--executable {bad!r}" in err


def test_the_units_run_the_syncd_of_the_environment_it_runs_from(tmp_path: Path) -> None:
    for command in ([SYNCD], [sys.executable, "-m", "syncd"]):
        root = tmp_path / Path(command[-1]).name
        subprocess.run([*command, "install", "--root", str(root)], check=True, capture_output=True)
        unit = (root / "etc/systemd/system/syncd.service").read_text()
        assert f"ExecStart={SYNCD} run" in unit, command
