"""A damaged state database: a clear error, exit 2, nothing sent, nothing lost (issue: state).

Each fault is met through the command line, as a user meets it, against the fake tenants. The
one that matters most: a ledger that is gone or unreadable is never taken for an empty
Learnster (which would create or adopt every user again) — no request is sent at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from syncd.app.cli import main
from syncd.errors import ExitCode
from tests.conftest import GRAPH_TOKEN, LEARNSTER_TOKEN, Harness, Mailbox

PAGE = 4096
LINKED = "SELECT graph_id FROM ledger_user"


def cli(h: Harness, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """One command as a user runs it: its exit code and its output on one line."""
    capsys.readouterr()
    code = main([*args, "--config", str(h.config_path)])
    captured = capsys.readouterr()
    return code, " ".join((captured.out + captured.err).split())


def synced(make_harness: Callable[..., Harness]) -> Harness:
    """Learnster filled by a first cycle; the state database closed (its WAL checkpointed)."""
    h = make_harness(users=40)
    assert h.sync().exit_code == ExitCode.OK
    assert not Path(h.config.state_database + "-wal").exists()
    h.learnster.clear_requests()
    return h


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sql(database: Path, statement: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        return db.execute(statement).fetchall()


def pages_of(database: Path, table: str) -> list[int]:
    """The pages of a table's own b-tree (SQLite's dbstat), in order."""
    try:
        rows = sql(database, f"SELECT pageno FROM dbstat WHERE name = '{table}' ORDER BY pageno")
    except sqlite3.OperationalError:
        pytest.skip("this SQLite has no dbstat table")
    return [int(str(row[0])) for row in rows]


def zero_page(database: Path, page: int) -> None:
    with database.open("r+b") as file:
        file.seek((page - 1) * PAGE)
        file.write(b"\0" * PAGE)


def assert_refused_by_every_command(
    h: Harness, capsys: pytest.CaptureFixture[str], *needles: str
) -> str:
    """sync, plan, status and check exit 2 with the message; sync, plan and status refuse
    before reading Graph or sending anything, and the file is left as it was."""
    database = Path(h.config.state_database)
    before = digest(database)
    graph_requests = len(h.graph.requests)
    messages = []
    for command in (["sync"], ["sync", "--full"], ["plan"], ["status"], ["check"]):
        code, out = cli(h, capsys, *command)
        assert code == ExitCode.USAGE, (command, out)
        assert f"state database {database}" in out.lower(), (command, out)
        for needle in needles:
            assert needle in out, (command, needle, out)
        assert "Traceback" not in out
        messages.append(out)
        if command != ["check"]:
            assert h.learnster.requests == []
            assert len(h.graph.requests) == graph_requests
    [probe] = h.learnster.requests  # check's test query, and nothing else
    assert probe.method == "GET"
    assert digest(database) == before
    print("\n".join(messages))
    return messages[0]


# -- the file --------------------------------------------------------------------------------


def test_a_database_cut_to_half_is_refused_by_every_command(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = synced(make_harness)
    database = Path(h.config.state_database)
    size = database.stat().st_size
    os.truncate(database, size // 2)
    message = assert_refused_by_every_command(
        h, capsys, "is truncated", "syncd state restore BACKUP", "move it aside"
    )
    assert f"{size // 2} bytes, its header says {size}" in message


def test_a_page_of_zeros_in_the_middle_of_the_ledger_stops_the_cycle_that_reads_it(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = synced(make_harness)
    database = Path(h.config.state_database)
    leaves = pages_of(database, "ledger_user")[1:]  # the first is the table's root
    middle = leaves[len(leaves) // 2]
    [(total,)] = sql(database, "PRAGMA page_count")
    assert 0.2 < middle / int(str(total)) < 0.9  # in the middle of the file, too
    zero_page(database, middle)

    # syncd check finds it with SQLite's integrity check, and says what to do.
    code, out = cli(h, capsys, "check")
    assert code == ExitCode.USAGE, out
    assert f"✗ State database {database} is damaged: SQLite's integrity check found:" in out
    assert "syncd state restore BACKUP" in out
    # A cycle that reads the whole ledger stops before it sends anything.
    h.learnster.clear_requests()
    code, out = cli(h, capsys, "sync", "--full")
    assert code == ExitCode.USAGE, out
    assert f"state database {database} is damaged: database disk image is malformed" in out
    assert "SQLITE_CORRUPT" in out
    assert "Traceback" not in out
    assert h.scim_requests() == []


def test_a_zeroed_ledger_root_page_is_refused_before_anything_is_read_or_sent(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = synced(make_harness)
    database = Path(h.config.state_database)
    zero_page(database, pages_of(database, "ledger_user")[0])
    message = assert_refused_by_every_command(h, capsys, "is damaged", "syncd state restore")
    assert "database disk image is malformed (SQLITE_CORRUPT)" in message


def test_a_file_that_is_not_a_database_is_refused(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = synced(make_harness)
    database = Path(h.config.state_database)
    zero_page(database, 1)  # the header page
    assert_refused_by_every_command(h, capsys, "is damaged", "it is not an SQLite database")


# -- a lost ledger is never an empty Learnster -----------------------------------------------


@pytest.mark.parametrize(
    "table", ["ledger_user", "ledger_group", "ledger_member", "snapshot_user", "delta_link"]
)
def test_a_lost_table_is_refused_never_created_again_empty(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str], table: str
) -> None:
    h = synced(make_harness)
    database = Path(h.config.state_database)
    sql(database, f"DROP TABLE {table}")
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.update_user(user["id"], jobTitle="Changed, so the cycle is not a quiet one")
    message = assert_refused_by_every_command(
        h, capsys, f"its schema version 4 has a table {table}, but it is missing"
    )
    assert "refusing to create it again empty" in message
    assert (table,) not in sql(database, "SELECT name FROM sqlite_master")  # not re-created
    assert not [r for r in h.learnster.requests if r.method == "POST"]


def test_an_emptied_database_where_syncd_ran_is_refused(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = synced(make_harness)
    database = Path(h.config.state_database)
    os.truncate(database, 0)
    message = assert_refused_by_every_command(h, capsys, "has lost its state: it is empty")
    assert "syncd has run here before (state.db.lock is beside it)" in message
    assert database.stat().st_size == 0


def test_moving_a_damaged_database_aside_as_told_adopts_everything_and_creates_nothing(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    # What the message offers besides a backup: it must hold.
    h = synced(make_harness)
    database = Path(h.config.state_database)
    os.truncate(database, database.stat().st_size // 2)
    database.rename(database.with_name("state.db.damaged"))
    users = len(h.learnster.users)
    code, out = cli(h, capsys, "sync")
    assert code == ExitCode.OK, out
    assert not [r for r in h.learnster.requests if r.method == "POST"]
    assert len(h.learnster.users) == users
    h.learnster.clear_requests()
    code, out = cli(h, capsys, "sync")
    assert code == ExitCode.OK, out
    assert h.scim_requests() == []


# -- a newer syncd ---------------------------------------------------------------------------


def test_a_database_of_a_newer_syncd_is_refused_and_kept_as_it_is(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = synced(make_harness)
    database = Path(h.config.state_database)
    sql(database, "UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    message = assert_refused_by_every_command(
        h, capsys, "has schema version 5, newer than this syncd knows (4)"
    )
    assert "upgrade syncd, or restore a backup this syncd made" in message
    assert sql(database, "SELECT value FROM meta WHERE key = 'schema_version'") == [("5",)]


# -- the file system: read-only, full ---------------------------------------------------------
#
# These run syncd as a subprocess, because the fault is made for it alone: a user namespace
# (root's permission override does not reach into one, so a read-only directory is one even
# when the tests run as root), a read-only bind mount, or a small tmpfs, each in a mount
# namespace of the subprocess's own. Without unprivileged namespaces they are skipped.

SYNCD = [sys.executable, "-m", "syncd"]


def namespaces(*flags: str) -> list[str]:
    """`unshare` with ``flags``, or a skip when this machine does not allow it."""
    command = ["unshare", *flags]
    try:
        done = subprocess.run([*command, "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("no unshare(1) here")
    if done.returncode != 0:
        pytest.skip(f"unshare {' '.join(flags)} is not allowed here: {done.stderr.decode()}")
    return command


def run_syncd(
    h: Harness, *args: str, wrap: Sequence[str] = (), config: Path | None = None
) -> tuple[int, str]:
    env = dict(
        os.environ, SYNCD_GRAPH_ACCESS_TOKEN=GRAPH_TOKEN, SYNCD_LEARNSTER_TOKEN=LEARNSTER_TOKEN
    )
    done = subprocess.run(
        [*wrap, *SYNCD, *args, "--config", str(config or h.config_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, " ".join((done.stdout + done.stderr).split())


def as_owner_without_override() -> list[str]:
    """A wrapper under which the state directory's mode bits hold for this user: root's
    CAP_DAC_OVERRIDE does not apply to files outside a user namespace it is not mapped in."""
    return namespaces("--user") if os.geteuid() == 0 else []


def test_a_read_only_state_directory_is_refused_with_what_to_do(
    make_harness: Callable[..., Harness],
) -> None:
    h = synced(make_harness)
    database = Path(h.config.state_database)
    wrap = as_owner_without_override()
    before = digest(database)
    user = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.graph.update_user(user["id"], jobTitle="Changed while the state was read-only")
    # The directory, then the file alone (its directory writable: status, which only reads,
    # still works), then both (status reads through the -shm the second case left).
    for directory_mode, file_mode, commands, why in (
        (0o555, 0o644, ("sync", "status"), f"; creating a file in {database.parent}: Permission"),
        (0o755, 0o444, ("sync",), "attempt to write a readonly database (SQLITE_READONLY)"),
        (0o555, 0o444, ("sync",), f"; creating a file in {database.parent}: Permission"),
    ):
        database.chmod(file_mode)
        database.parent.chmod(directory_mode)
        try:
            if commands == ("sync",):
                assert run_syncd(h, "status", wrap=wrap)[0] == ExitCode.OK
            for command in commands:
                code, out = run_syncd(h, command, wrap=wrap)
                assert code == ExitCode.USAGE, out
                assert f"cannot open or write the state database {database}" in out, out
                assert why in out, out
                assert f"syncd's user needs write access to {database.parent}" in out
                assert "Traceback" not in out
        finally:
            database.parent.chmod(0o755)
            database.chmod(0o644)
    assert h.learnster.requests == []
    assert digest(database) == before
    # Writable again: the change is sent, nothing else (nothing was lost).
    code, out = run_syncd(h, "sync")
    assert code == ExitCode.OK, out
    [patch] = h.scim_requests()
    assert patch.method == "PATCH"
    assert "Changed while the state was read-only" in str(patch.body)


def test_a_read_only_file_system_is_refused_with_what_to_do(
    make_harness: Callable[..., Harness],
) -> None:
    h = synced(make_harness)
    database = Path(h.config.state_database)
    flags = ["--mount"] if os.geteuid() == 0 else ["--user", "--map-root-user", "--mount"]
    directory = str(database.parent)
    wrap = [
        *namespaces(*flags, "--propagation", "private"),
        "sh",
        "-c",
        'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"',
        directory,
    ]
    code, out = run_syncd(h, "sync", wrap=wrap)
    if "mount:" in out and code != ExitCode.USAGE:
        pytest.skip(f"no read-only bind mount here: {out}")
    assert code == ExitCode.USAGE, out
    assert f"cannot open or write the state database {database}" in out
    assert f"creating a file in {directory}: Read-only file system" in out
    assert "under systemd keep [state] database inside the unit's StateDirectory" in out
    assert h.learnster.requests == []


class SmallDisk:
    """A shell in a mount namespace of its own with a tmpfs at ``mount``: each line sent runs
    there, so the state database on it outlives one syncd process."""

    def __init__(self, mount: Path, size: str) -> None:
        mount.mkdir()
        self.mount = mount
        script = (
            'mount -t tmpfs -o size="$1" tmpfs "$0" || exit 1; echo ready; '
            'while IFS= read -r line; do eval "$line"; echo "rc=$?"; done'
        )
        wrap = namespaces("--user", "--map-root-user", "--mount")
        env = dict(
            os.environ, SYNCD_GRAPH_ACCESS_TOKEN=GRAPH_TOKEN, SYNCD_LEARNSTER_TOKEN=LEARNSTER_TOKEN
        )
        self.shell = subprocess.Popen(
            [*wrap, "sh", "-c", script, str(mount), size],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.shell.stdin is not None
        assert self.shell.stdout is not None
        self.stdin, self.stdout = self.shell.stdin, self.shell.stdout
        if self.stdout.readline().strip() != "ready":
            self.close()
            pytest.skip("cannot mount a tmpfs in a user namespace here")

    def run(self, line: str) -> int:
        self.stdin.write(line + "\n")
        self.stdin.flush()
        while not (answer := self.stdout.readline()).startswith("rc="):
            assert answer, "the shell on the small disk ended"
        return int(answer[3:])

    def leave_free(self, blocks: int) -> None:
        """Fill the disk but ``blocks`` blocks of 4 KiB."""
        m = self.mount
        assert (
            self.run(
                f"dd if=/dev/zero of={m}/filler bs=4096 count=$(( $(stat -f -c %a {m}) - {blocks} )) 2>/dev/null"
            )
            == 0
        )

    def syncd(self, arguments: str) -> tuple[int, str]:
        """syncd in the namespace: its exit code and output on one line."""
        output = self.mount.parent / "syncd.out"
        code = self.run(f"{' '.join(SYNCD)} {arguments} > {output} 2>&1")
        return code, " ".join(output.read_text().split())

    def close(self) -> None:
        self.stdin.close()
        self.shell.wait(timeout=60)


def posted_users(h: Harness) -> list[str]:
    """The userNames of the users Learnster created for this request log."""
    return [
        r.body["userName"]
        for r in h.scim_requests()
        if r.method == "POST" and r.path == "/Users" and r.status == 201
    ]


def held_by_learnster(h: Harness, names: set[str]) -> set[str]:
    """Those of ``names`` Learnster holds, once the requests it is still answering are done
    (a process that stopped on an error leaves some on their way)."""
    held: set[str] = set()
    for _ in range(50):
        now = {u["userName"] for u in h.learnster.users.values()} & names
        if now == held:
            return held
        held = now
        time.sleep(0.2)
    raise AssertionError("Learnster kept creating users")


def test_a_disk_that_fills_mid_cycle_loses_nothing_and_the_next_cycle_duplicates_nothing(
    make_harness: Callable[..., Harness], tmp_path: Path
) -> None:
    h = synced(make_harness)
    linked_before = {row[0] for row in sql(Path(h.config.state_database), LINKED)}
    disk = SmallDisk(tmp_path / "small", "16m")
    try:
        database = disk.mount / "state.db"
        config = tmp_path / "small.toml"
        config.write_text(h.config_path.read_text().replace(h.config.state_database, str(database)))
        assert disk.run(f"cp {h.config.state_database} {database}") == 0
        hires = {
            h.graph.add_user({"userPrincipalName": f"hire{i}@x.example", "displayName": "Hire"}): (
                f"hire{i}@x.example"
            )
            for i in range(60)
        }
        h.graph.add_group({"displayName": "Hires"}, member_ids=hires)
        disk.leave_free(80)  # room for the cycle's start and a few of its creates

        code, message = disk.syncd(f"sync --config {config}")
        assert code == ExitCode.USAGE, message
        assert (
            f"cannot write the state database {database}: the disk is full (database or disk "
            "is full (SQLITE_FULL)). Free space on the file system of"
        ) in message
        assert "what Learnster acknowledged but syncd could not record is matched" in message
        assert "Traceback" not in message
        created = held_by_learnster(h, set(hires.values()))
        copy = tmp_path / "after"
        disk.run(f"mkdir {copy} && cp {database} {database}-wal {copy}/")
        linked = {row[0] for row in sql(copy / "state.db", LINKED)}
        assert linked_before <= linked  # nothing recorded before is lost
        unrecorded = created - {hires[gid] for gid in linked & hires.keys()}
        assert unrecorded, "no create was acknowledged and left unrecorded: fill less"

        # Space again: the next cycle links what was created, creates the rest, once each.
        assert disk.run(f"rm {disk.mount}/filler") == 0
        h.learnster.clear_requests()
        code, message = disk.syncd(f"sync --config {config}")
        assert code == ExitCode.OK, message
        assert not created & set(posted_users(h))  # nothing Learnster holds is created again
        assert created | set(posted_users(h)) == set(hires.values())
        assert not [r for r in h.scim_requests() if r.status == 409]
        names = Counter(u["userName"] for u in h.learnster.users.values())
        assert all(names[name] == 1 for name in hires.values())
        assert [g["displayName"] for g in h.learnster.groups.values()].count("Hires") == 1
        h.learnster.clear_requests()
        code, message = disk.syncd(f"sync --config {config}")
        assert code == ExitCode.OK, message
        assert h.scim_requests() == []
        print(
            f"created before the disk was full: {len(created)}, of them unrecorded: "
            f"{len(unrecorded)}; the next cycle created {len(hires) - len(created)}"
        )
    finally:
        disk.close()


# -- the daemon ------------------------------------------------------------------------------


def test_the_daemon_logs_a_damaged_state_database_each_cycle_and_mails_it_once(
    make_harness: Callable[..., Harness],
    mailbox: tuple[Mailbox, int],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from syncd.app.daemon import Daemon

    box, port = mailbox
    h = synced(make_harness)
    h.reconfigure(
        '[sync]\nphone_default_region = "SE"\n'
        f'[notify]\nemail_to = ["ops@example.org"]\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\n'
    )
    backup = tmp_path / "state-backup.db"
    assert cli(h, capsys, "state", "backup", str(backup))[0] == ExitCode.OK
    database = Path(h.config.state_database)
    os.truncate(database, database.stat().st_size // 2)

    daemon = Daemon(str(h.config_path))  # the job `syncd run` schedules, run twice
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("syncd.daemon").addHandler(handler)
    try:
        daemon.cycle()
        daemon.cycle()
    finally:
        logging.getLogger("syncd.daemon").removeHandler(handler)
    failures = [r for r in records if r.getMessage().startswith("cycle failed:")]
    assert len(failures) == 2
    assert failures[0].levelno == logging.ERROR
    assert f"cycle failed: state database {database} is damaged: it is truncated" in (
        failures[0].getMessage()
    )
    assert all(r.exc_info is None for r in records)  # a message, not a traceback
    assert not any("cycle crashed" in r.getMessage() for r in records)
    [mail] = box.messages
    assert "the state database cannot be used" in mail["Subject"]
    body = " ".join(mail.get_payload(decode=True).decode().split())
    assert f"state database {database} is damaged" in body
    assert "syncd state restore BACKUP" in body
    assert h.learnster.requests == []

    assert cli(h, capsys, "state", "restore", str(backup))[0] == ExitCode.OK
    daemon.cycle()
    assert len(box.messages) == 2
    assert "recovered" in box.messages[1]["Subject"]
    assert h.scim_requests() == []
