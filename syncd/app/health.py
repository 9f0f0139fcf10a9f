"""Health after each cycle: logged and mailed when it *changes*, exported as Prometheus metrics."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import datetime

from syncd.adapters.sqlite import Store
from syncd.config import Config, NotifyConfig
from syncd.cycle.report import CycleReport
from syncd.errors import ExitCode, Health
from syncd.ports import RunLog

log = logging.getLogger("syncd.health")

OK = Health.OK
_TITLES = {
    Health.PARTIAL: "some objects failed",
    Health.GUARD: "deletion guard tripped",
    # Exit code 4's name first, as the command line documents it, then which one it is.
    Health.CREDENTIALS: "authentication or connection failure: credentials refused",
    Health.PERMISSIONS: "authentication or connection failure: a permission is missing",
    Health.CONNECTION: "authentication or connection failure: cannot connect",
    Health.GRAPH: "Microsoft Graph answered the read with an error",
    Health.CONFIG: "configuration error",
    Health.STATE: "the state database cannot be used",
    Health.QUARANTINE: "quarantined, most requests to Learnster failed",
}
_WHAT_TO_DO = {
    Health.PARTIAL: (
        "Some objects failed and are kept in retry; syncd tries them again every cycle.\n"
        "See them with: syncd status"
    ),
    Health.GUARD: (
        "The accidental-deletion guard held back deactivations and deletions.\n"
        "Review them with: syncd plan\n"
        "If they are intended, release them once with: syncd sync --allow-deletions"
    ),
    Health.CREDENTIALS: (
        "Microsoft Graph, Entra's sign-in or Learnster refused syncd's credentials: the client\n"
        "secret or certificate of the app registration, or Learnster's Secret Token.\n"
        "Diagnose with: syncd check"
    ),
    Health.PERMISSIONS: (
        "syncd signed in, but is not allowed to read or write what it needs: grant the app\n"
        "registration's application permissions (with admin consent), or check the token.\n"
        "Diagnose with: syncd check"
    ),
    Health.CONNECTION: (
        "syncd could not reach Microsoft Graph or Learnster (network, DNS, proxy, TLS), or\n"
        "what answers at the configured URL is not the expected service.\n"
        "Diagnose with: syncd check"
    ),
    Health.GRAPH: (
        "Microsoft Graph answered a read with an error (its status, code and message are\n"
        "above). Sign-in worked: this is not a credentials problem. Nothing was deactivated\n"
        "or deleted from the incomplete read; creates and updates of what was read went on.\n"
        "If it persists, check Microsoft 365 service health or open a case with Microsoft,\n"
        "quoting the error."
    ),
    Health.CONFIG: "The configuration is not usable. Fix it, then run: syncd check",
    Health.STATE: (
        "syncd's state database, its record of what Learnster holds, cannot be used (the\n"
        "message above names the file and says why). Nothing more is sent until it can be:\n"
        "after freeing space or fixing permissions the next cycle goes on by itself; a\n"
        "damaged file is replaced with: syncd state restore BACKUP\n"
        "Check it with: syncd check"
    ),
    Health.QUARANTINE: (
        "Most SCIM requests failed, so syncd stopped sending for this cycle (quarantine).\n"
        "See the errors with: syncd status --log\n"
        "Test the connection with: syncd check"
    ),
}


def health_title(state: Health) -> str:
    """A few words for a health state, for a mail's subject and the command line's verdict."""
    return _TITLES.get(state, str(state))


@dataclass(frozen=True)
class Transition:
    """Health changed: from ``before`` to ``after``, since ``since``."""

    before: str
    after: str
    since: str
    message: str

    @property
    def recovered(self) -> bool:
        return self.after == OK

    def subject(self, host: str) -> str:
        if self.recovered:
            return f"[syncd] {host}: recovered, Learnster is in sync again"
        return f"[syncd] {host}: {health_title(Health(self.after))}"

    def body(self, host: str) -> str:
        if self.recovered:
            return (
                f"syncd on {host} completed a cycle with every object applied.\n"
                f"It had been in state '{self.before}' since {self.since}.\n"
            )
        return (
            f"syncd on {host}: {self.message or self.after}\n\n"
            f"{_WHAT_TO_DO.get(Health(self.after), '')}\n\n"
            "You get one message when this starts and one when it is over, not one per cycle.\n"
        )


def observe(runs: RunLog, report: CycleReport, now: datetime) -> Transition | None:
    """Record the health a cycle leaves behind; a Transition when it differs from before."""
    state = report.health
    if state is None:  # e.g. the lock was busy: that run says nothing about health
        return None
    previous = runs.health() or {"state": OK, "since": now.isoformat()}
    if previous["state"] == state:
        return None
    runs.set_health({"state": state, "since": now.isoformat(), "message": report.message})
    transition = Transition(previous["state"], state, previous["since"], report.message)
    cycle = {"cycle": report.run_id}
    if transition.recovered:
        log.info("recovered: was %s since %s", transition.before, transition.since, extra=cycle)
    else:
        log.error(
            "health is now %s (was %s): %s", state, transition.before, report.message, extra=cycle
        )
    return transition


def send_notification(notify: NotifyConfig, transition: Transition) -> bool:
    """E-mail the transition to ``[notify] email_to``; False (logged) when it cannot be sent."""
    if not notify.email_to:
        return False
    # Imported here: most cycles mail nothing, and smtplib with email costs ~8 ms of start-up.
    import smtplib
    from email.message import EmailMessage

    host = socket.gethostname()
    message = EmailMessage()
    message["From"] = f"syncd@{host}"
    message["To"] = ", ".join(notify.email_to)
    message["Subject"] = transition.subject(host)
    message.set_content(transition.body(host))
    try:
        with smtplib.SMTP(notify.smtp_host, notify.smtp_port, timeout=30) as smtp:
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        log.error(
            "could not send the notification to %s via %s:%s: %s",
            message["To"],
            notify.smtp_host,
            notify.smtp_port,
            exc,
        )
        return False
    return True


class Metrics:
    """Prometheus gauges describing the last cycle and the current state."""

    def __init__(self) -> None:
        # Imported here: a sync without metrics configured need not load prometheus_client.
        from prometheus_client import CollectorRegistry, Gauge

        self.registry = CollectorRegistry()
        r = self.registry
        self.last_cycle = Gauge(
            "syncd_last_cycle_timestamp_seconds", "End of the last cycle", registry=r
        )
        self.last_success = Gauge(
            "syncd_last_success_timestamp_seconds",
            "End of the last fully applied cycle",
            registry=r,
        )
        self.duration = Gauge(
            "syncd_last_cycle_duration_seconds", "Duration of the last cycle", registry=r
        )
        self.exit_code = Gauge(
            "syncd_last_cycle_exit_code", "Exit code of the last cycle", registry=r
        )
        self.operations = Gauge(
            "syncd_last_cycle_operations",
            "Operations of the last cycle by kind and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.requests = Gauge(
            "syncd_last_cycle_scim_requests",
            "SCIM requests of the last cycle",
            ["request"],
            registry=r,
        )
        self.concurrency = Gauge(
            "syncd_last_cycle_concurrency",
            "Learnster requests in flight the adaptive limit allowed at the end of the last "
            "cycle (limit), and its ceiling, max_concurrency",
            ["value"],
            registry=r,
        )
        self.latency = Gauge(
            "syncd_last_cycle_learnster_latency_seconds",
            "Learnster's smoothed and base (lowest smoothed) latency in the last cycle",
            ["value"],
            registry=r,
        )
        self.throttled = Gauge(
            "syncd_last_cycle_throttled_requests",
            "Learnster answers of the last cycle that were 429, 503 or a timeout",
            registry=r,
        )
        self.in_retry = Gauge(
            "syncd_objects_in_retry", "Objects kept in retry (escrow)", registry=r
        )
        self.guard = Gauge(
            "syncd_guard_held_removals", "Removals held by the deletion guard", registry=r
        )
        self.linked = Gauge(
            "syncd_linked_objects", "Objects linked in Learnster", ["kind"], registry=r
        )

    def update(self, store: Store, report: CycleReport, finished: datetime) -> None:
        self.last_cycle.set(finished.timestamp())
        if report.exit_code == ExitCode.OK:
            self.last_success.set(finished.timestamp())
        self.duration.set(report.duration_seconds)
        self.exit_code.set(int(report.exit_code))
        self.operations.clear()
        for kind, outcomes in report.outcomes.items():
            for outcome, count in outcomes.items():
                self.operations.labels(kind, outcome).set(count)
        self.requests.clear()
        for request, count in report.scim_requests.items():
            self.requests.labels(request).set(count)
        if report.sending is not None:
            self.concurrency.labels("limit").set(report.sending.limit)
            self.concurrency.labels("ceiling").set(report.sending.ceiling)
            self.latency.labels("smoothed").set(report.sending.latency_ms / 1000)
            self.latency.labels("base").set(report.sending.base_latency_ms / 1000)
            self.throttled.set(report.sending.throttled)
        counts = store.counts()
        self.in_retry.set(counts["escrows"])
        self.guard.set(report.held)
        self.linked.labels("user").set(counts["users_linked"])
        self.linked.labels("group").set(counts["groups_linked"])

    def serve(self, listen: str) -> None:
        """Serve /metrics on ``host:port`` (the daemon)."""
        from prometheus_client import start_http_server

        host, _, port = listen.rpartition(":")
        start_http_server(int(port), addr=host or "127.0.0.1", registry=self.registry)

    def write_textfile(self, path: str) -> None:
        """For node_exporter's textfile collector (one-shot runs from a timer)."""
        from prometheus_client import write_to_textfile

        write_to_textfile(path, self.registry)


def after_cycle(
    config: Config, store: Store, report: CycleReport, now: datetime, metrics: Metrics | None
) -> None:
    """Everything that follows a cycle: health, notification, metrics."""
    transition = observe(store.runs, report, now)
    if transition is not None:
        send_notification(config.notify, transition)
    if metrics is not None:
        metrics.update(store, report, now)
        if config.metrics.textfile:
            try:
                metrics.write_textfile(config.metrics.textfile)
            except OSError as exc:
                log.error("cannot write metrics to %s: %s", config.metrics.textfile, exc)
