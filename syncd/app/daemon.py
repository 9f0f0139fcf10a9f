"""``syncd run``: cycles on the configured schedule (or every N seconds), systemd notify,
graceful stop, reload."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from syncd.adapters.sqlite import Store
from syncd.app.health import OK, Metrics, Transition, after_cycle, send_notification
from syncd.app.logs import use_config_format
from syncd.app.wiring import sync_once
from syncd.config import Config, load_config
from syncd.cycle.report import CycleReport
from syncd.errors import ConfigError, Health, LockHeld, SyncdError
from syncd.schedule import cron_trigger, next_runs

log = logging.getLogger("syncd.daemon")

JOB_ID = "cycle"
MISFIRE_GRACE_SECONDS = 3600  # a machine that was asleep at 02:00 still syncs once it wakes


class SystemdNotifier:
    """sd_notify(3) over $NOTIFY_SOCKET; does nothing when not run by systemd."""

    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # abstract namespace
            address = "\0" + address[1:]
        self._address = address
        self._socket: socket.socket | None = None
        if address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        watchdog_usec = os.environ.get("WATCHDOG_USEC", "")
        watchdog_pid = os.environ.get("WATCHDOG_PID", "")
        valid = watchdog_usec.isdigit() and (not watchdog_pid or watchdog_pid == str(os.getpid()))
        # Ping at half the interval, as sd_watchdog_enabled(3) recommends.
        self.watchdog_interval = int(watchdog_usec) / 2_000_000 if valid else None

    def notify(self, message: str) -> None:
        if self._socket is None:
            return
        try:
            self._socket.sendto(message.encode(), self._address)
        except OSError as exc:
            log.warning("cannot notify systemd: %s", exc)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()


class Daemon:
    """One scheduler, one cycle at a time, health tracked across cycles."""

    def __init__(
        self, config_path: str, *, run_now: bool = False, every: float | None = None
    ) -> None:
        """``every``: seconds between cycles instead of ``[schedule] cron`` (the first at once)."""
        self.config_path = config_path
        self.config: Config = load_config(config_path)
        self.run_now = run_now or every is not None
        self.every = every
        self.notifier = SystemdNotifier()
        self.stopping = threading.Event()  # SIGTERM/SIGINT: stop after a checkpoint
        self.reload_requested = threading.Event()  # SIGHUP
        self.metrics = Metrics()
        self._failing: Health | None = None  # a cycle's state could not be used (_failed)
        self._failing_since = ""
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={
                "max_instances": 1,
                "coalesce": True,
                "misfire_grace_time": MISFIRE_GRACE_SECONDS,
            },
        )

    # -- the job ----------------------------------------------------------------------------

    def cycle(self) -> None:
        config = self.config
        if self.stopping.is_set():
            return
        self.notifier.notify("STATUS=cycle running")
        try:
            report = self._locked_cycle(config)
        except LockHeld as exc:
            log.warning("cycle skipped: %s", exc)
            return
        except SyncdError as exc:  # the state database cannot be used: damaged, full, ...
            self._failed(config, exc)
            return
        except Exception:  # the daemon outlives a bug in one cycle; the next may succeed
            log.exception("cycle crashed")
            return
        self._recovered(config, report)
        log.info(
            "cycle done (%s read, exit %d): %s",
            report.mode,
            report.exit_code,
            report.message or report.summary(),
            extra={"cycle": report.run_id},
        )
        self.notifier.notify(f"STATUS=last cycle: {report.summary()}; {self._next_run_text()}")

    def _locked_cycle(self, config: Config) -> CycleReport:
        store = Store(config.state_database)
        try:
            with store.lock():
                report = asyncio.run(sync_once(config, store, cancel=self.stopping))
                now = datetime.now(UTC)
                after_cycle(config, store, report, now, self.metrics)
        finally:
            store.close()
        return report

    def _failed(self, config: Config, exc: SyncdError) -> None:
        """A cycle that could not use its state: logged every time, mailed once.

        The health a cycle leaves is kept in the state database, which is what failed; so
        this failure is remembered here, in the daemon.
        """
        log.error("cycle failed: %s", exc)
        self.notifier.notify(f"STATUS=last cycle failed: {exc}; {self._next_run_text()}")
        state = exc.health or Health.CONFIG
        if self._failing != state:
            now = datetime.now(UTC).isoformat()
            send_notification(config.notify, Transition(self._failing or OK, state, now, str(exc)))
            self._failing, self._failing_since = state, now

    def _recovered(self, config: Config, report: CycleReport) -> None:
        if self._failing is None or report.health != OK:
            return
        send_notification(config.notify, Transition(self._failing, OK, self._failing_since, ""))
        log.info("recovered: was %s since %s", self._failing, self._failing_since)
        self._failing = None

    def _next_run_text(self) -> str:
        # From the schedule itself, not the scheduler: asking the scheduler from inside a job
        # deadlocks with a concurrent shutdown (it holds its job store lock while joining us).
        if self.every is not None:
            return f"every {self.every:g} s"
        schedule = self.config.schedule
        runs = next_runs(schedule.cron, schedule.timezone, datetime.now(UTC), 1)
        return f"next at {runs[0]:%Y-%m-%d %H:%M %Z}" if runs else "no next run"

    # -- lifecycle --------------------------------------------------------------------------

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info(
            "received %s: stopping after the operations in flight", signal.Signals(signum).name
        )
        self.stopping.set()

    def _on_reload(self, _signum: int, _frame: FrameType | None) -> None:
        self.reload_requested.set()

    def _reload(self) -> None:
        self.reload_requested.clear()
        self.notifier.notify("RELOADING=1")
        try:
            config = load_config(self.config_path)
            trigger = self._trigger(config)
        except ConfigError as exc:
            log.error("configuration not reloaded, keeping the running one: %s", exc)
        else:
            self.config = config
            use_config_format(config.log_format)
            if self.every is None:  # --every keeps its interval and its rhythm
                self.scheduler.reschedule_job(JOB_ID, trigger=trigger)
            log.info("configuration reloaded; %s", self._next_run_text())
        self.notifier.notify(f"READY=1\nSTATUS=waiting; {self._next_run_text()}")

    def _trigger(self, config: Config) -> BaseTrigger:
        if self.every is not None:
            return IntervalTrigger(seconds=self.every)
        return cron_trigger(config.schedule.cron, config.schedule.timezone)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        trigger = self._trigger(self.config)
        self.scheduler.add_job(self.cycle, trigger, id=JOB_ID, name="sync cycle")
        if self.config.metrics.listen:
            self.metrics.serve(self.config.metrics.listen)
            log.info("metrics on http://%s/metrics", self.config.metrics.listen)
        self.scheduler.start()
        if self.run_now:
            self.scheduler.get_job(JOB_ID).modify(next_run_time=datetime.now(UTC))
        log.info("syncd running; %s", self._next_run_text())
        self.notifier.notify(f"READY=1\nSTATUS=waiting; {self._next_run_text()}")
        tick = self.notifier.watchdog_interval or 1.0
        while not self.stopping.wait(min(tick, 1.0)):
            if self.notifier.watchdog_interval:
                self.notifier.notify("WATCHDOG=1")
            if self.reload_requested.is_set():
                self._reload()
        self.notifier.notify("STOPPING=1\nSTATUS=stopping")
        # The running cycle sees `stopping` and sends nothing new; wait for what is in flight.
        self.scheduler.shutdown(wait=True)
        self.notifier.close()
        log.info("syncd stopped")
        return 0
