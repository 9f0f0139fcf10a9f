"""--version (the log options follow in this file)."""

from __future__ import annotations

import pytest

from syncd.app.cli import main


def test_version_names_syncd_msgraph_sdk_and_python(capsys: pytest.CaptureFixture[str]) -> None:
    import platform
    from importlib.metadata import version

    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == (
        f"syncd 0.1.0 (msgraph-sdk {version('msgraph-sdk')}, Python {platform.python_version()})\n"
    )
