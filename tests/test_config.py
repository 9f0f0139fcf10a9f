"""Configuration: the example parses, mistakes are named, secrets stay out of the file and logs."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from syncd.app.cli import main
from syncd.config import learnster_token, load_config, parse_config
from syncd.credentials import Secret
from syncd.errors import ConfigError

EXAMPLE = Path(__file__).parent.parent / "syncd" / "share" / "config" / "syncd.example.toml"


CLAUSE = {"attribute": "department", "operator": "EQUALS", "value": "Sales"}


def minimal(**sections: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "graph": {"tenant_id": "t", "client_id": "c"},
        "learnster": {"tenant_url": "https://l.example/scim/v2"},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return data


def test_the_example_configuration_parses_with_the_documented_defaults() -> None:
    config = load_config(str(EXAMPLE))
    assert config.graph.auth == "client_secret"
    assert config.learnster.max_concurrency == 8
    assert config.scope.effective_sync_groups == "all"
    assert config.sync.max_deletions == 500
    assert config.schedule.cron == "0 2 * * *"
    assert config.state_database == "/var/lib/syncd/state.db"
    assert config.state_log_days == 30
    assert config.log_format == "auto"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (minimal(graph={"client_secret": "hunter2"}), "graph.client_secret holds a secret"),
        (minimal(learnster={"token": "hunter2"}), "learnster.token holds a secret"),
        (minimal(learnster={"tenant_url": "http://learnster.example/scim"}), "must use https"),
        (minimal(sync={"max_deletion": 5}), "unknown setting [sync] 'max_deletion'"),
        (minimal(sync={"on_hard_delete": "purge"}), "must be one of: delete | deactivate"),
        (minimal(scope={"mode": "groups"}), "needs at least one entry in groups"),
        (minimal(schedule={"cron": "0 2 * *"}), "must have 5 fields"),
        (minimal(sync={"phone_default_region": "XX"}), "not a region code"),
        (minimal(learnster={"max_concurrency": 0}), "max_concurrency = 0 is out of range"),
        (
            minimal(graph={"max_response_bytes": 100}),
            "[graph] max_response_bytes = 100 is out of range [65536, 1073741824]",
        ),
        (
            minimal(learnster={"max_response_bytes": "big"}),
            "[learnster] max_response_bytes must be a whole number",
        ),
        (
            minimal(learnster={"tenant_url": "https://u:hunter2@learnster.example/scim/v2"}),
            "[learnster] tenant_url must not carry a user name or password",
        ),
        (minimal(mapping={"user": {"userName": ""}}), "cannot be dropped"),
        (minimal(scope={"mode": "assigned"}), 'mode = "assigned" needs application'),
        (minimal(scope={"mode": "everyone"}), "must be one of: all | groups | assigned"),
        (minimal(sync={"match_by": ["emails", "phone"]}), "'phone' is not a matching attribute"),
        (minimal(sync={"match_by": []}), "match_by must be a list of attributes"),
        (minimal(state={"log_days": 0}), "[state] log_days must be a positive number"),
        (minimal(state={"log_days": "30"}), "[state] log_days must be a positive number"),
        (
            minimal(logging={"format": "xml"}),
            "syncd.toml: [logging] format = 'xml' must be one of: auto | json | text",
        ),
        (minimal(logging={"format": 1}), "[logging] format = 1 must be one of: auto | json | text"),
        (minimal(logging={"level": "debug"}), "unknown setting [logging] 'level'; known: format"),
        ({**minimal(), "logging": "json"}, "[logging] must be a table"),
        (minimal(state={"log_days": float("nan")}), "[state] log_days must be a positive number"),
        (minimal(state={"log_days": float("inf")}), "[state] log_days must be a positive number"),
        (
            minimal(scope={"filter": [{"clauses": [CLAUSE, {**CLAUSE, "operator": "LIKE"}]}]}),
            "syncd.toml: [[scope.filter]] 1 clause 2: operator 'LIKE' is not one of",
        ),
        (
            minimal(
                scope={
                    "filter": [{"clauses": [{**CLAUSE, "operator": "REGEX MATCH", "value": "("}]}]
                }
            ),
            "[[scope.filter]] 1 clause 1: the regular expression '(' does not compile",
        ),
        (
            minimal(scope={"filter": [{"clauses": [{**CLAUSE, "attribute": "shoeSize"}]}]}),
            "[[scope.filter]] 1 clause 1: 'shoeSize' is not a Graph user property",
        ),
        (
            minimal(scope={"filter": {"clauses": [CLAUSE]}}),
            "[[scope.filter]] must be tables",
        ),
    ],
)
def test_mistakes_are_refused_naming_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, source="syncd.toml")
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_http_is_allowed_on_loopback_only() -> None:
    config = parse_config(minimal(learnster={"tenant_url": "http://127.0.0.1:9/scim/v2"}))
    assert config.learnster.tenant_url == "http://127.0.0.1:9/scim/v2"


def test_secret_comes_from_env_then_credentials_directory_then_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    config = parse_config(minimal(learnster={"token_file": str(token_file)}))
    monkeypatch.delenv("SYNCD_LEARNSTER_TOKEN", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert learnster_token(config).reveal() == "from-file"
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "learnster-token").write_text("from-credential")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    assert learnster_token(config).reveal() == "from-credential"
    monkeypatch.setenv("SYNCD_LEARNSTER_TOKEN", "from-env")
    assert learnster_token(config).reveal() == "from-env"


def test_secret_never_shows_itself() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in f"{secret} {secret!r}"


def test_missing_secret_names_every_place_it_may_come_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNCD_LEARNSTER_TOKEN", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match=r"SYNCD_LEARNSTER_TOKEN.*learnster-token"):
        learnster_token(parse_config(minimal()))


def test_cli_configuration_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "syncd.toml"
    bad.write_text('[graph]\ntenant_id = "t"\nclient_id = "c"\nclient_secret = "hunter2"\n')
    assert main(["status", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "holds a secret" in err
    assert "hunter2" not in err
    assert main(["status", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "broken.toml").write_text("[graph\n")
    assert main(["status", "--config", str(tmp_path / "broken.toml")]) == 2


def test_cli_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["sync", "--bogus"])
    assert caught.value.code == 2


def test_example_is_valid_toml_with_every_documented_section() -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    assert set(data) == {
        "graph",
        "learnster",
        "scope",
        "sync",
        "mapping",
        "schedule",
        "state",
        "notify",
        "metrics",
        "logging",
    }
