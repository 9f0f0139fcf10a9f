"""The sdist and the wheel as an operator gets them: built, installed into a fresh venv, run.

`python -m build` makes the sdist and then the wheel from that sdist (so the sdist is shown to
hold what a build needs). The venv is a plain fresh one and the wheel is installed with its
dependencies, as `pip install syncd` would. On the project's 2-core machine the whole test took
37-55 s (the build ~4 s, the venv ~4 s, pip ~30-46 s, the demo ~1 s): within the CI budget, so no
shortcut through the dev venv's packages, which could hide a dependency missing from
pyproject.toml. It runs in `make test` like every test (``slow`` only labels it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARE = ROOT / "syncd" / "share"


def run(*command: str | Path, cwd: Path, timeout: float = 600) -> str:
    """Run outside this test's environment: no dev venv, no checkout on the import path."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env = {k: v for k, v in env.items() if not k.startswith("SYNCD_")}
    result = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_wheel_installs_into_a_fresh_venv_and_carries_the_units(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--outdir", dist, ROOT, cwd=tmp_path)
    (sdist,) = dist.glob("syncd-*.tar.gz")
    (wheel,) = dist.glob("syncd-*.whl")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in (
        "README.md",
        "MANIFEST.in",
        "docs/ARCHITECTURE.md",
        "tests/test_packaging.py",
        "tests/conftest.py",
        "syncd/share/systemd/syncd@.service",
        "syncd/share/config/syncd.example.toml",
    ):
        assert needed in names, needed

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    run(venv / "bin/python", "-m", "pip", "install", "--quiet", wheel, cwd=tmp_path)
    syncd = venv / "bin/syncd"
    assert run(syncd, "--version", cwd=tmp_path).startswith("syncd ")
    demo = run(syncd, "demo", "--users", "30", cwd=tmp_path)
    assert "nothing to send: Learnster already matches the directory" in demo

    package = run(
        venv / "bin/python",
        "-c",
        "import syncd, pathlib; print(pathlib.Path(syncd.__file__).parent)",
        cwd=tmp_path,
    ).strip()
    assert Path(package).is_relative_to(venv), package  # the installed copy, not the checkout
    shipped = sorted(p.relative_to(SHARE) for p in SHARE.rglob("*") if p.is_file())
    installed = Path(package) / "share"
    assert sorted(p.relative_to(installed) for p in installed.rglob("*") if p.is_file()) == shipped
    for relative in shipped:
        assert (installed / relative).read_bytes() == (SHARE / relative).read_bytes(), relative

    # `syncd install` of the installed syncd makes its units run that syncd.
    root = tmp_path / "root"
    out = run(syncd, "install", "--instance", "acme", "--root", root, cwd=tmp_path)
    assert "ProtectHome=yes, PrivateTmp=yes" in out  # the venv is under /tmp here
    unit = (root / "etc/systemd/system/syncd@.service").read_text()
    assert f"ExecStart={syncd} run --config /etc/syncd/%i.toml" in unit
