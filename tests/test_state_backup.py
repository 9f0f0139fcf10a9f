"""`syncd state backup FILE` and `syncd state restore FILE`, and `syncd check`'s state line."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from syncd.adapters.sqlite import SCHEMA_VERSION, cycle_lock
from syncd.errors import ExitCode
from tests.conftest import GRAPH_TOKEN, LEARNSTER_TOKEN, Harness
from tests.test_state_faults import SYNCD, cli, digest, pages_of, sql, synced, zero_page


def test_backup_damage_restore_and_the_next_cycle_sends_nothing(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    h = synced(make_harness)
    database = Path(h.config.state_database)
    backup = tmp_path / "backups" / "state-1.db"
    backup.parent.mkdir()
    code, out = cli(h, capsys, "state", "backup", str(backup))
    assert code == ExitCode.OK, out
    assert out == (
        f"backed up {database} to {backup} (schema version {SCHEMA_VERSION}; 39 users and 16 "
        "tags linked)"
    )
    assert backup.stat().st_mode & 0o777 == 0o600  # it holds personal data
    assert not Path(f"{backup}-wal").exists()  # one self-contained file
    assert sql(backup, "PRAGMA integrity_check") == [("ok",)]

    os.truncate(database, database.stat().st_size // 2)
    damaged = digest(database)
    code, out = cli(h, capsys, "sync")
    assert code == ExitCode.USAGE
    assert "is truncated" in out

    code, out = cli(h, capsys, "state", "restore", str(backup))
    assert code == ExitCode.OK, out
    [kept] = database.parent.glob("state.db.replaced-*[0-9]Z")
    assert out == (
        f"restored {backup} into {database} (schema version {SCHEMA_VERSION}; 39 users and 16 "
        f"tags linked). The replaced database is kept as {kept}. The next cycle plans over the "
        "whole directory once; what changed in Learnster since the backup is matched, not "
        "created again."
    )
    assert digest(kept) == damaged
    code, out = cli(h, capsys, "check")
    assert code == ExitCode.OK, out
    assert f"✓ State database {database}: SQLite's integrity check found no problem" in out

    h.learnster.clear_requests()
    report = h.sync()
    assert report.exit_code == ExitCode.OK
    assert report.planned  # convergence was forgotten: the whole directory was planned
    assert h.scim_requests() == []  # and Learnster already holds all of it
    report = h.sync()
    assert (report.exit_code, report.planned) == (ExitCode.OK, False)  # converged again
    assert h.scim_requests() == []


def test_a_backup_never_overwrites_unless_forced(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    h = synced(make_harness)
    backup = tmp_path / "state-backup.db"
    backup.write_text("something else")
    code, out = cli(h, capsys, "state", "backup", str(backup))
    assert code == ExitCode.USAGE
    assert out == f"syncd: {backup} exists: name another file, or give --force to replace it"
    assert backup.read_text() == "something else"
    code, out = cli(h, capsys, "state", "backup", str(backup), "--force")
    assert code == ExitCode.OK, out
    assert sql(backup, "SELECT COUNT(*) FROM ledger_user") == [(39,)]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".state-backup")] == []


def test_a_backup_restored_on_a_new_host_sends_nothing(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    h = synced(make_harness)
    database = Path(h.config.state_database)
    backup = tmp_path / "state-backup.db"
    code, out = cli(h, capsys, "state", "backup", str(database), "--force")
    assert code == ExitCode.USAGE
    assert out == f"syncd: {database} is the state database itself: name another file"
    assert cli(h, capsys, "state", "backup", str(backup))[0] == ExitCode.OK
    for path in database.parent.glob("state.db*"):
        path.unlink()  # a new host: no state database, no lock
    code, out = cli(h, capsys, "state", "restore", str(backup))
    assert code == ExitCode.OK, out
    assert "The replaced database" not in out
    assert h.sync().exit_code == ExitCode.OK
    assert h.scim_requests() == []


def test_a_damaged_database_is_not_backed_up(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    h = synced(make_harness)
    database = Path(h.config.state_database)
    zero_page(database, pages_of(database, "ledger_user")[-1])  # opens, a later page is damaged
    backup = tmp_path / "state-backup.db"
    code, out = cli(h, capsys, "state", "backup", str(backup))
    assert code == ExitCode.USAGE, out
    assert f"state database {database} is damaged" in out
    assert f"nothing was written to {backup}" in out
    assert not backup.exists()


def test_restore_refuses_under_a_running_cycle_with_exit_5(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    h = synced(make_harness)
    database = Path(h.config.state_database)
    backup = tmp_path / "state-backup.db"
    assert cli(h, capsys, "state", "backup", str(backup))[0] == ExitCode.OK
    before = digest(database)
    with cycle_lock(database):  # as a running cycle holds it
        code, out = cli(h, capsys, "state", "restore", str(backup))
    assert code == ExitCode.LOCKED
    assert "another syncd cycle is running" in out
    assert digest(database) == before
    assert list(database.parent.glob("state.db.replaced-*")) == []


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        ("truncate", "is truncated"),
        ("newer", "schema version 5, newer than this syncd knows (4)"),
        ("foreign", "it is no syncd state database"),
        ("text", "it is not an SQLite database"),
    ],
)
def test_restore_refuses_a_backup_it_cannot_use_and_leaves_the_state_alone(
    make_harness: Callable[..., Harness],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    spoil: str,
    reason: str,
) -> None:
    h = synced(make_harness)
    database = Path(h.config.state_database)
    backup = tmp_path / "state-backup.db"
    assert cli(h, capsys, "state", "backup", str(backup))[0] == ExitCode.OK
    if spoil == "truncate":
        os.truncate(backup, backup.stat().st_size // 2)
    elif spoil == "newer":
        sql(backup, "UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    elif spoil == "foreign":
        backup.unlink()
        sql(backup, "CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    else:
        backup.write_text("not a database\n" * 100)
    before = digest(database)
    code, out = cli(h, capsys, "state", "restore", str(backup))
    assert code == ExitCode.USAGE, out
    assert reason in out
    assert str(backup) in out
    assert digest(database) == before
    assert list(database.parent.glob("state.db.replaced-*")) == []
    assert [p.name for p in database.parent.iterdir() if ".tmp-" in p.name] == []


def test_a_backup_made_while_a_cycle_runs_restores_to_no_duplicate(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    h = make_harness(users=60)
    h.learnster.latency_ms = 40  # the first cycle's creates take a while
    env = dict(
        os.environ, SYNCD_GRAPH_ACCESS_TOKEN=GRAPH_TOKEN, SYNCD_LEARNSTER_TOKEN=LEARNSTER_TOKEN
    )
    cycle = subprocess.Popen(
        [*SYNCD, "sync", "--config", str(h.config_path)], env=env, stderr=subprocess.DEVNULL
    )
    backup = tmp_path / "state-mid-cycle.db"
    try:
        deadline = time.monotonic() + 60
        while len(h.learnster.users) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        code, out = cli(h, capsys, "state", "backup", str(backup))
        assert code == ExitCode.OK, out
        assert cycle.poll() is None, "the cycle ended before the backup was made"
        assert cycle.wait(timeout=120) == ExitCode.OK
    finally:
        if cycle.poll() is None:
            cycle.kill()
            cycle.wait()
    in_backup = sql(backup, "SELECT COUNT(*) FROM ledger_user")[0][0]
    held = len(h.learnster.users)
    assert 0 < int(str(in_backup)) < held  # one moment of the cycle, part of its creates
    assert sql(backup, "PRAGMA integrity_check") == [("ok",)]

    code, out = cli(h, capsys, "state", "restore", str(backup))
    assert code == ExitCode.OK, out
    h.learnster.clear_requests()
    report = h.sync()
    assert report.exit_code == ExitCode.OK, report.message
    assert not [r for r in h.scim_requests() if r.method == "POST" and r.path == "/Users"]
    assert len(h.learnster.users) == held  # the users created after the backup were adopted
    h.learnster.clear_requests()
    assert h.sync().exit_code == ExitCode.OK
    assert h.scim_requests() == []


def test_check_reports_the_state_database(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = make_harness(users=10)
    database = Path(h.config.state_database)
    code, out = cli(h, capsys, "check")
    assert code == ExitCode.OK, out
    assert f"✓ State database {database} does not exist yet: the first cycle creates it" in out
    assert not database.exists()  # check creates nothing
    assert h.sync().exit_code == ExitCode.OK
    code, out = cli(h, capsys, "check")
    assert code == ExitCode.OK, out
    assert (
        f"✓ State database {database}: SQLite's integrity check found no problem (schema "
        f"version {SCHEMA_VERSION}; {len(h.learnster.users)} users and" in out
    )
    sql(database, "UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    code, out = cli(h, capsys, "check")
    assert code == ExitCode.USAGE
    assert f"✗ state database {database} has schema version 5, newer than" in out
