"""`syncd run` and what surrounds a cycle: systemd notify, lock, e-mail, metrics, secrets."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.app.cli import main
from syncd.errors import ExitCode
from tests.conftest import GRAPH_TOKEN, LEARNSTER_TOKEN, Harness, Mailbox, free_port

SYNCD = [sys.executable, "-m", "syncd"]


class NotifySocket:
    """A stand-in for systemd's notify socket: collects what the daemon sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def wait_for(self, needle: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        for message in self.messages:
            if needle in message:
                return message
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.messages.append(data)
            if needle in data:
                return data
        raise AssertionError(f"no {needle!r} from the daemon; got {self.messages}")

    def drain(self) -> None:
        """Collect what is waiting: a full socket would block the daemon's next message."""
        self.sock.setblocking(False)
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(0.2)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    ns = NotifySocket(tmp_path / "notify.sock")
    yield ns
    ns.sock.close()


def daemon_env(notify: NotifySocket, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        NOTIFY_SOCKET=str(notify.path),
        WATCHDOG_USEC="400000",
        SYNCD_GRAPH_ACCESS_TOKEN=GRAPH_TOKEN,
        SYNCD_LEARNSTER_TOKEN=LEARNSTER_TOKEN,
        **extra,
    )
    env.pop("WATCHDOG_PID", None)
    return env


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_daemon_notifies_systemd_serves_metrics_and_stops_on_sigterm(
    make_harness: Callable[..., Harness], notify_socket: NotifySocket
) -> None:
    port = free_port()
    h = make_harness(users=25)
    h.reconfigure(f'[metrics]\nlisten = "127.0.0.1:{port}"\n[schedule]\ncron = "0 2 * * *"\n')
    process = subprocess.Popen(
        [*SYNCD, "run", "--now", "--config", str(h.config_path)],
        env=daemon_env(notify_socket, INVOCATION_ID="0123456789abcdef"),  # "under systemd"
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = notify_socket.wait_for("READY=1")
        assert "STATUS=waiting; next at" in ready
        notify_socket.wait_for("WATCHDOG=1")
        notify_socket.wait_for("STATUS=last cycle:")
        created = len(h.learnster.users)
        assert created == sum(1 for u in h.graph.users if u.get("accountEnabled"))
        metrics = scrape(port)
        assert (
            metrics['syncd_last_cycle_operations{kind="create_user",outcome="created"}'] == created
        )
        assert metrics['syncd_linked_objects{kind="user"}'] == created
        assert metrics["syncd_last_cycle_exit_code"] == 0
        assert metrics["syncd_last_success_timestamp_seconds"] > time.time() - 120
        assert metrics["syncd_objects_in_retry"] == 0
        assert metrics['syncd_last_cycle_concurrency{value="ceiling"}'] == 8  # max_concurrency
        assert 1 <= metrics['syncd_last_cycle_concurrency{value="limit"}'] <= 8
        assert metrics['syncd_last_cycle_learnster_latency_seconds{value="smoothed"}'] > 0
        assert metrics["syncd_last_cycle_throttled_requests"] == 0

        # SIGHUP: the configuration is read again and the new schedule applies, and so does
        # its log format.
        text = h.config_path.read_text().replace('cron = "0 2 * * *"', 'cron = "15 4 * * *"')
        text += '[logging]\nformat = "text"\n'
        h.config_path.write_text(text)
        notify_socket.messages.clear()
        process.send_signal(signal.SIGHUP)
        notify_socket.wait_for("RELOADING=1")
        assert "04:15" in notify_socket.wait_for("READY=1\nSTATUS=waiting; next at", timeout=10)

        process.send_signal(signal.SIGTERM)
        notify_socket.wait_for("STOPPING=1")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    logs = process.stderr.read() if process.stderr else ""
    assert LEARNSTER_TOKEN not in logs
    assert GRAPH_TOKEN not in logs
    # Under systemd: one JSON object per line for the journal, until the configuration said
    # text.
    lines = logs.splitlines()
    reloaded = next(i for i, line in enumerate(lines) if "configuration reloaded" in line)
    entries = [json.loads(line) for line in lines[:reloaded]]
    messages = [e["message"] for e in entries]
    assert any(m.startswith("syncd running;") for m in messages)
    [done] = [e for e in entries if e["message"].startswith("cycle done (full read, exit 0)")]
    assert done["cycle"] == 1  # the run of `syncd status --log`
    assert {e["level"] for e in entries} <= {"debug", "info", "warning", "error"}
    assert not any(line.startswith("{") for line in lines[reloaded:])
    assert lines[-1].endswith(" INFO    syncd stopped")


def test_a_second_sync_during_a_cycle_exits_5(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    h = make_harness(users=40)
    h.learnster.latency_ms = 150  # a slow Learnster keeps the first cycle busy
    env = dict(
        os.environ, SYNCD_GRAPH_ACCESS_TOKEN=GRAPH_TOKEN, SYNCD_LEARNSTER_TOKEN=LEARNSTER_TOKEN
    )
    first = subprocess.Popen(
        [*SYNCD, "sync", "--config", str(h.config_path)], env=env, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while not h.learnster.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert h.learnster.requests, "the first cycle never reached Learnster"
        capsys.readouterr()
        started = time.monotonic()
        assert main(["sync", "--config", str(h.config_path)]) == ExitCode.LOCKED
        assert time.monotonic() - started < 5  # at once, not after waiting
        err = capsys.readouterr().err
        assert "another syncd cycle is running" in err
        assert f"pid {first.pid}" in err
        assert first.wait(timeout=120) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def test_one_email_when_failing_starts_none_while_it_lasts_one_on_recovery(
    make_harness: Callable[..., Harness],
    mailbox: tuple[Mailbox, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box, port = mailbox
    h = make_harness(users=10)
    h.reconfigure(
        f'[notify]\nemail_to = ["ops@example.org"]\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\n'
    )
    monkeypatch.setenv("SYNCD_LEARNSTER_TOKEN", "a-wrong-token")
    assert main(["sync", "--config", str(h.config_path)]) == ExitCode.AUTH
    assert len(box.messages) == 1
    first = box.messages[0]
    assert "authentication or connection failure" in first["Subject"]
    body = first.get_payload()
    assert "syncd check" in body
    assert "a-wrong-token" not in body

    assert main(["sync", "--config", str(h.config_path)]) == ExitCode.AUTH
    assert len(box.messages) == 1  # still failing: no second message

    monkeypatch.setenv("SYNCD_LEARNSTER_TOKEN", LEARNSTER_TOKEN)
    assert main(["sync", "--config", str(h.config_path)]) == 0
    assert len(box.messages) == 2
    assert "recovered" in box.messages[1]["Subject"]
    assert main(["sync", "--config", str(h.config_path)]) == 0
    assert len(box.messages) == 2


def test_the_guard_and_a_textfile_for_timer_runs(
    make_harness: Callable[..., Harness], mailbox: tuple[Mailbox, int], tmp_path: Path
) -> None:
    box, port = mailbox
    textfile = tmp_path / "syncd.prom"
    h = make_harness(users=20)
    h.reconfigure(
        f'[notify]\nemail_to = ["ops@example.org"]\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\n'
        f'[metrics]\ntextfile = "{textfile}"\n'
        "[sync]\nmax_deletions = 2\n"
    )
    assert main(["sync", "--config", str(h.config_path)]) == 0
    assert (
        'syncd_last_cycle_operations{kind="create_user",outcome="created"}' in textfile.read_text()
    )
    for user in [u for u in h.graph.users if u.get("accountEnabled")][:3]:
        h.graph.disable_user(user["id"])
    assert main(["sync", "--config", str(h.config_path)]) == ExitCode.GUARD
    assert "deletion guard tripped" in box.messages[-1]["Subject"]
    assert "syncd sync --allow-deletions" in box.messages[-1].get_payload()
    assert "syncd_guard_held_removals 3.0" in textfile.read_text()


def test_no_secret_in_logs_status_or_errors(
    make_harness: Callable[..., Harness],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    h = make_harness(users=10)
    caplog.set_level(logging.DEBUG)
    victim = next(u for u in h.graph.users if u.get("accountEnabled"))
    h.learnster.reject(victim["userPrincipalName"], 400, detail="bad value")
    outputs = []
    for argv in (
        ["sync"],
        ["sync", "--json"],
        ["status"],
        ["status", "--json"],
        ["plan", "--json"],
    ):
        main([*argv, "--config", str(h.config_path)])
        captured = capsys.readouterr()
        outputs.append(captured.out + captured.err)
    monkeypatch.setenv("SYNCD_LEARNSTER_TOKEN", "wrong-" + LEARNSTER_TOKEN)
    main(["sync", "--config", str(h.config_path)])
    main(["check", "--config", str(h.config_path)])
    captured = capsys.readouterr()
    outputs.append(captured.out + captured.err)
    everything = "\n".join([*outputs, caplog.text, *(str(r.exc_info) for r in caplog.records)])
    for secret in (LEARNSTER_TOKEN, GRAPH_TOKEN):
        assert secret not in everything
    assert "bad value" in everything  # the errors themselves are there


def test_sigterm_mid_cycle_checkpoints_quickly_and_loses_nothing(
    make_harness: Callable[..., Harness], notify_socket: NotifySocket
) -> None:
    h = make_harness(users=60)
    h.learnster.latency_ms = 100  # ~60 creates at concurrency 8: the cycle takes a while
    process = subprocess.Popen(
        [*SYNCD, "run", "--now", "--config", str(h.config_path)],
        env=daemon_env(notify_socket),
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(h.learnster.users) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        assert process.wait(timeout=30) == 0
        assert time.monotonic() - stopped < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    enabled = sum(1 for u in h.graph.users if u.get("accountEnabled"))
    assert 5 <= len(h.learnster.users) < enabled  # stopped part-way
    h.learnster.latency_ms = 0
    h.learnster.clear_requests()
    assert h.sync().exit_code == ExitCode.OK
    names = [u["userName"].lower() for u in h.learnster.users.values()]
    assert len(names) == len(set(names)) == enabled
    posts = [r for r in h.scim_requests() if r.method == "POST" and r.path == "/Users"]
    assert len(posts) == enabled - (len(names) - len(posts))  # only the missing ones were created


def finished_runs(
    config_path: Path, capsys: pytest.CaptureFixture[str], notify: NotifySocket
) -> list[dict[str, Any]]:
    """The finished cycles ``syncd status --json`` lists, newest first."""
    notify.drain()
    capsys.readouterr()
    assert main(["status", "--json", "--config", str(config_path)]) == 0
    runs: list[dict[str, Any]] = json.loads(capsys.readouterr().out)["runs"]
    return [r for r in runs if r["finished_at"]]


def test_run_every_second_cycles_at_once_and_again_keeps_its_interval_and_stops_on_sigterm(
    make_harness: Callable[..., Harness],
    notify_socket: NotifySocket,
    capsys: pytest.CaptureFixture[str],
) -> None:
    h = make_harness(users=25)
    h.reconfigure('[schedule]\ncron = "0 2 * * *"\n')
    process = subprocess.Popen(
        [*SYNCD, "run", "--every", "1", "--config", str(h.config_path)],
        env=daemon_env(notify_socket),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "STATUS=waiting; every 1 s" in notify_socket.wait_for("READY=1")
        first = notify_socket.wait_for("STATUS=last cycle:", timeout=10)  # at once, not in 1 s
        assert first.endswith("; every 1 s")
        assert len(h.learnster.users) == sum(1 for u in h.graph.users if u.get("accountEnabled"))
        user = next(u for u in h.graph.users if u.get("accountEnabled"))
        h.graph.update_user(user["id"], jobTitle="Every second")
        started = time.monotonic()
        deadline = started + 20
        while (
            len(finished_runs(h.config_path, capsys, notify_socket)) < 4
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        runs = finished_runs(h.config_path, capsys, notify_socket)
        assert len(runs) >= 4, runs
        assert time.monotonic() - started < 8  # three more cycles, a second or so apart
        assert {r["exit_code"] for r in runs} == {0}
        resource = h.learnster.user_by_username(user["userPrincipalName"])
        assert resource is not None
        assert resource["title"] == "Every second"

        # SIGHUP: the configuration is read again; the interval stays (cron is not used).
        notify_socket.messages.clear()
        process.send_signal(signal.SIGHUP)
        notify_socket.wait_for("RELOADING=1")
        assert "every 1 s" in notify_socket.wait_for("READY=1\nSTATUS=waiting;", timeout=10)
        count = len(finished_runs(h.config_path, capsys, notify_socket))
        deadline = time.monotonic() + 10
        while len(finished_runs(h.config_path, capsys, notify_socket)) < count + 2:
            assert time.monotonic() < deadline, "no cycles after the reload"
            time.sleep(0.2)

        process.send_signal(signal.SIGTERM)
        notify_socket.wait_for("STOPPING=1")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    logs = process.stderr.read() if process.stderr else ""
    assert "syncd running; every 1 s" in logs
    assert "configuration reloaded; every 1 s" in logs
    assert "syncd stopped" in logs
    assert "Traceback" not in logs


@pytest.mark.parametrize("value", ["0", "0.5", "-2", "nan", "inf", "soon"])
def test_run_every_refuses_what_is_not_a_number_of_seconds_of_at_least_one(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["run", "--every", value])
    assert caught.value.code == ExitCode.USAGE
    assert f"argument --every: {value!r} is not a number of seconds >= 1" in capsys.readouterr().err
