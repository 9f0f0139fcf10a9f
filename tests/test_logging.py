"""Log lines through the command line: --log-format, [logging] format, the fields JSON lines
carry (cycle, object, operation), --log-level, and --version."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from syncd.app.cli import main
from syncd.errors import ExitCode
from tests.conftest import Harness, write_config


def json_lines(err: str) -> list[dict[str, Any]]:
    """Every line of stderr, each of which must be one JSON object."""
    lines = err.splitlines()
    assert lines, "nothing was logged"
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(entry, dict) for entry in parsed)
    return parsed


def rejected(make_harness: Callable[..., Harness], **kwargs: Any) -> tuple[Harness, dict[str, Any]]:
    """Twelve users, one of whom Learnster refuses: a cycle that logs an error about one user."""
    h = make_harness(users=12, **kwargs)
    victim = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.learnster.reject(victim["userPrincipalName"], 400, detail="name too long")
    return h, victim


def fail_another(h: Harness, seen: set[str]) -> dict[str, Any]:
    """Change a user Learnster will refuse: the next cycle logs an error about them (a user
    who failed before waits in escrow, and is not tried again so soon)."""
    user = next(u for u in h.graph.users if u.get("accountEnabled") and u["id"] not in seen)
    seen.add(user["id"])
    h.graph.update_user(user["id"], jobTitle="Refused")
    h.learnster.reject(user["userPrincipalName"], 400, detail="still too long")
    return user


def errors(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The error lines about one object (the cycle's health has its own)."""
    return [entry for entry in lines if entry["level"] == "error" and "object" in entry]


def test_json_lines_name_the_cycle_the_object_and_the_operation(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h, victim = rejected(make_harness)
    args = ["sync", "--json", "--log-format", "json", "--log-level", "DEBUG"]
    assert main([*args, "--config", str(h.config_path)]) == ExitCode.PARTIAL
    captured = capsys.readouterr()
    cycle = json.loads(captured.out)["cycle"]
    assert isinstance(cycle, int)
    lines = json_lines(captured.err)
    assert {"ts", "level", "logger", "message"} <= set(lines[0])
    per_object = [entry for entry in lines if "object" in entry]
    enabled = {u["id"] for u in h.graph.users if u.get("accountEnabled")}
    created = {e["object"] for e in per_object if e.get("operation") == "create_user"}
    assert created == enabled  # one debug line per operation, the failed one too
    assert all(e["cycle"] == cycle for e in per_object)
    # Lines about an object's data (a phone number dropped) name no operation.
    assert all("operation" in e or e["level"] == "warning" for e in per_object)
    [failure] = errors(lines)
    assert failure == {
        "ts": failure["ts"],
        "level": "error",
        "logger": "syncd.cycle",
        "message": f"create_user {victim['userPrincipalName']} ({victim['id']}) failed: "
        "name too long",
        "cycle": cycle,
        "object": victim["id"],
        "operation": "create_user",
    }

    capsys.readouterr()
    status = ["status", "--log", victim["id"], "--format", "jsonl", "--log-format", "json"]
    assert main([*status, "--config", str(h.config_path)]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["cycle"], row["object_id"], row["result"]) == (cycle, victim["id"], "failed")


def test_the_configurations_logging_format_takes_effect_and_the_flag_wins(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h, victim = rejected(make_harness, extra='[logging]\nformat = "json"\n')
    assert h.config.log_format == "json"
    assert main(["sync", "--config", str(h.config_path)]) == ExitCode.PARTIAL
    [failure] = errors(json_lines(capsys.readouterr().err))
    assert (failure["object"], failure["operation"], failure["cycle"]) == (
        victim["id"],
        "create_user",
        1,
    )

    other = fail_another(h, {victim["id"]})
    args = ["sync", "--log-format", "text", "--config", str(h.config_path)]
    assert main(args) == ExitCode.PARTIAL
    err = capsys.readouterr().err
    assert not any(line.startswith("{") for line in err.splitlines())
    assert re.search(
        rf"^\d\d:\d\d:\d\d ERROR   update_user {re.escape(other['userPrincipalName'])} "
        rf"\({other['id']}\) failed: still too long$",
        err,
        re.MULTILINE,
    )


def test_auto_is_json_under_systemd_and_text_when_asked(
    make_harness: Callable[..., Harness],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h, victim = rejected(make_harness)
    seen = {victim["id"]}
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef")  # as systemd sets it for a unit
    assert main(["sync", "--log-format", "text", "--config", str(h.config_path)]) == 1
    err = capsys.readouterr().err
    assert f" ERROR   create_user {victim['userPrincipalName']} " in err
    assert not any(line.startswith("{") for line in err.splitlines())

    other = fail_another(h, seen)
    assert main(["sync", "--config", str(h.config_path)]) == 1  # auto
    [failure] = errors(json_lines(capsys.readouterr().err))
    assert (failure["object"], failure["operation"], failure["cycle"]) == (
        other["id"],
        "update_user",
        2,
    )

    # $SYNCD_LOG_FORMAT is the flag's default, so it wins over the configuration too.
    monkeypatch.setenv("SYNCD_LOG_FORMAT", "text")
    h.reconfigure('[logging]\nformat = "json"\n')
    other = fail_another(h, seen)
    assert main(["sync", "--config", str(h.config_path)]) == 1
    assert f" ERROR   update_user {other['userPrincipalName']} " in capsys.readouterr().err


def test_a_configuration_error_is_a_json_line_when_json_was_asked_for(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = make_harness(users=3)
    write_config(h.config_path.parent, h.graph, h.learnster, '[logging]\nformat = "xml"\n')
    assert main(["status", "--log-format", "json", "--config", str(h.config_path)]) == 2
    [line] = json_lines(capsys.readouterr().err)
    assert line["level"] == "error"
    assert line["message"] == (
        f"{h.config_path}: [logging] format = 'xml' must be one of: auto | json | text"
    )
    assert main(["status", "--config", str(h.config_path)]) == 2  # text: as before
    assert capsys.readouterr().err == (
        f"syncd: {h.config_path}: [logging] format = 'xml' must be one of: auto | json | text\n"
    )
    write_config(h.config_path.parent, h.graph, h.learnster, "[logging]\ncolour = true\n")
    assert main(["status", "--config", str(h.config_path)]) == 2
    assert "unknown setting [logging] 'colour'; known: format" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "environment", "message"),
    [
        (
            ["status", "--log-level", "loud"],
            {},
            "argument --log-level: invalid choice: 'loud' (choose from 'debug', 'info', "
            "'warning', 'error', 'critical')",
        ),
        (
            ["sync", "--log-format", "xml"],
            {},
            "argument --log-format: invalid choice: 'xml' (choose from 'auto', 'json', 'text')",
        ),
        (
            ["status"],
            {"SYNCD_LOG_LEVEL": "loud"},
            "SYNCD_LOG_LEVEL='loud' is not one of: debug, info, warning, error, critical",
        ),
        (
            ["status"],
            {"SYNCD_LOG_FORMAT": "xml"},
            "SYNCD_LOG_FORMAT='xml' is not one of: auto, json, text",
        ),
    ],
)
def test_a_log_level_or_format_that_is_none_is_a_usage_error(
    argv: list[str],
    environment: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == ExitCode.USAGE
    assert message in capsys.readouterr().err


def test_a_log_level_is_taken_in_any_case_from_the_flag_or_the_environment(
    make_harness: Callable[..., Harness],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h, victim = rejected(make_harness)
    assert main(["sync", "--log-level", "Critical", "--config", str(h.config_path)]) == 1
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("SYNCD_LOG_LEVEL", "DEBUG")
    user = next(u for u in h.graph.users if u.get("accountEnabled") and u["id"] != victim["id"])
    h.graph.update_user(user["id"], jobTitle="Debugged")
    assert main(["sync", "--config", str(h.config_path)]) == 0
    line = f" DEBUG   update_user {user['userPrincipalName']} ({user['id']}): updated\n"
    assert line in capsys.readouterr().err


def test_version_names_syncd_msgraph_sdk_and_python(capsys: pytest.CaptureFixture[str]) -> None:
    import platform
    from importlib.metadata import version

    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == (
        f"syncd 0.1.0 (msgraph-sdk {version('msgraph-sdk')}, Python {platform.python_version()})\n"
    )
