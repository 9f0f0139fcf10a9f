"""Load and validate syncd.toml; secrets are refused there and read from elsewhere (credentials)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.config_values import (
    boolean,
    choice,
    no_unknown,
    number,
    string,
    table_of,
    url,
    whole,
)
from syncd.core.filters import ScopeFilter, parse_filters
from syncd.core.records import is_user_attribute
from syncd.credentials import Secret, read_secret
from syncd.errors import ConfigError

DEFAULT_CONFIG_PATH = "/etc/syncd/syncd.toml"
GRAPH_AUTH_MODES = (
    "client_secret",
    "certificate",
    "managed_identity",
    "workload_identity",
    "default",
    "access_token",
)
# Keys that would hold a secret: refused in the file, whatever the section.
_SECRET_KEYS = frozenset(
    {"client_secret", "secret", "token", "secret_token", "access_token", "password"}
)


# The longest answer read from Graph or Learnster (decoded): a Graph page of 999 users is ~2 MB,
# a tag of 30,000 members ~3 MB; an answer that does not end is cut off here.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
RESPONSE_BYTES_RANGE = (64 * 1024, 1024 * 1024 * 1024)


@dataclass(frozen=True)
class GraphConfig:
    tenant_id: str
    client_id: str
    auth: str = "client_secret"
    client_secret_file: str = ""
    certificate_path: str = ""
    base_url: str = "https://graph.microsoft.com/v1.0"
    authority: str = "login.microsoftonline.com"
    ca_file: str = ""  # extra CA bundle (TLS-inspecting proxies, test CAs)
    max_response_bytes: int = MAX_RESPONSE_BYTES  # one answer, decoded; more fails that read


@dataclass(frozen=True)
class LearnsterConfig:
    tenant_url: str
    token_file: str = ""
    max_concurrency: int = 8
    timeout_seconds: float = 60.0
    ca_file: str = ""
    max_requests_per_second: float = 0.0  # 0 = no client-side rate limit
    max_response_bytes: int = MAX_RESPONSE_BYTES  # one answer, decoded; more fails that request


@dataclass(frozen=True)
class ScopeConfig:
    mode: str = "all"  # all | groups | assigned
    groups: tuple[str, ...] = ()
    application: str = ""  # mode assigned: the Learnster app's appId or service principal id
    nested: bool = False
    sync_groups: str = ""
    filters: tuple[ScopeFilter, ...] = ()  # [[scope.filter]]: any matches (OR) of all (AND)

    @property
    def filter_attributes(self) -> tuple[str, ...]:
        """The Graph user attributes the filters read."""
        return tuple(sorted({c.attribute for f in self.filters for c in f.clauses}))

    @property
    def effective_sync_groups(self) -> str:
        if self.sync_groups:
            return self.sync_groups
        return "all" if self.mode == "all" else "scope"


@dataclass(frozen=True)
class SyncConfig:
    on_hard_delete: str = "delete"
    max_deletions: int = 500
    max_deletion_percent: int = 50
    phone_default_region: str = ""
    member_batch_size: int = 100
    match_by: tuple[str, ...] = ("userName",)  # matching precedence for adopting users


MATCH_ATTRIBUTES = ("userName", "emails")


@dataclass(frozen=True)
class ScheduleConfig:
    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    full_every_days: int = 7


@dataclass(frozen=True)
class NotifyConfig:
    email_to: tuple[str, ...] = ()
    smtp_host: str = "localhost"
    smtp_port: int = 25


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = ""
    textfile: str = ""


@dataclass(frozen=True)
class Config:
    graph: GraphConfig
    learnster: LearnsterConfig
    scope: ScopeConfig = ScopeConfig()
    sync: SyncConfig = SyncConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    notify: NotifyConfig = NotifyConfig()
    metrics: MetricsConfig = MetricsConfig()
    state_database: str = "/var/lib/syncd/state.db"
    state_log_days: float = 30.0  # [state] log_days: the provisioning log kept this long
    log_format: str = "auto"  # [logging] format: auto | json | text
    user_mapping_overrides: Mapping[str, str] = field(default_factory=dict)
    source_path: str = ""


def config_path(explicit: str | None) -> str:
    """The path given on the command line, else $SYNCD_CONFIG, else the system default."""
    return explicit or os.environ.get("SYNCD_CONFIG") or DEFAULT_CONFIG_PATH


def load_config(path: str) -> Config:
    """Read and validate the TOML file at ``path``; every problem raises ConfigError naming it."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"configuration file {path} not found (use --config PATH or set SYNCD_CONFIG)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, source=path)


def parse_config(data: Mapping[str, Any], *, source: str = "<config>") -> Config:
    """Validate an already-parsed TOML document."""
    _refuse_secrets(data, source)
    known = {
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
    no_unknown(data, known, source, "")
    for required in ("graph", "learnster"):
        if required not in data:
            raise ConfigError(f"{source}: section [{required}] is required")
    state_database, log_days = _state_section(data, source)
    return Config(
        graph=_graph_section(data, source),
        learnster=_learnster_section(data, source),
        scope=_scope_section(data, source),
        sync=_sync_section(data, source),
        schedule=_schedule_section(data, source),
        state_database=state_database,
        state_log_days=log_days,
        notify=_notify_section(data, source),
        metrics=_metrics_section(data, source),
        log_format=_logging_section(data, source),
        user_mapping_overrides=_mapping_section(data, source),
        source_path=source,
    )


def _graph_section(data: Mapping[str, Any], source: str) -> GraphConfig:
    graph = table_of(data, "graph", source)
    graph_cfg = GraphConfig(
        tenant_id=string(graph, "tenant_id", "graph", source, required=True),
        client_id=string(
            graph, "client_id", "graph", source, required=graph.get("auth") != "access_token"
        ),
        auth=choice(graph, "auth", GRAPH_AUTH_MODES, "client_secret", "graph", source),
        client_secret_file=string(graph, "client_secret_file", "graph", source),
        certificate_path=string(graph, "certificate_path", "graph", source),
        base_url=url(graph, "base_url", "https://graph.microsoft.com/v1.0", "graph", source),
        authority=string(graph, "authority", "graph", source) or "login.microsoftonline.com",
        ca_file=string(graph, "ca_file", "graph", source),
        max_response_bytes=_response_bytes(graph, "graph", source),
    )
    no_unknown(graph, set(GraphConfig.__dataclass_fields__), source, "graph")
    if graph_cfg.auth == "certificate" and not graph_cfg.certificate_path:
        raise ConfigError(f'{source}: [graph] auth = "certificate" needs certificate_path')
    return graph_cfg


def _learnster_section(data: Mapping[str, Any], source: str) -> LearnsterConfig:
    learnster = table_of(data, "learnster", source)
    no_unknown(learnster, set(LearnsterConfig.__dataclass_fields__), source, "learnster")
    return LearnsterConfig(
        tenant_url=url(learnster, "tenant_url", None, "learnster", source).rstrip("/"),
        token_file=string(learnster, "token_file", "learnster", source),
        max_concurrency=whole(learnster, "max_concurrency", 8, "learnster", source, low=1, high=64),
        timeout_seconds=number(learnster, "timeout_seconds", 60.0, "learnster", source),
        ca_file=string(learnster, "ca_file", "learnster", source),
        max_requests_per_second=number(
            learnster, "max_requests_per_second", 0.0, "learnster", source, allow_zero=True
        ),
        max_response_bytes=_response_bytes(learnster, "learnster", source),
    )


def _scope_section(data: Mapping[str, Any], source: str) -> ScopeConfig:
    scope = table_of(data, "scope", source)
    known = {*ScopeConfig.__dataclass_fields__, "filter"} - {"filters"}
    no_unknown(scope, known, source, "scope")
    groups = scope.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise ConfigError(f"{source}: [scope] groups must be a list of group names or ids")
    tables = scope.get("filter", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{source}: [[scope.filter]] must be tables ([[scope.filter]] ...)")
    try:
        filters = parse_filters(tables, is_user_attribute)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    scope_cfg = ScopeConfig(
        mode=choice(scope, "mode", ("all", "groups", "assigned"), "all", "scope", source),
        groups=tuple(groups),
        application=string(scope, "application", "scope", source),
        nested=boolean(scope, "nested", False, "scope", source),
        sync_groups=choice(
            scope, "sync_groups", ("", "all", "scope", "with_members", "none"), "", "scope", source
        ),
        filters=filters,
    )
    if scope_cfg.mode == "groups" and not scope_cfg.groups:
        raise ConfigError(f'{source}: [scope] mode = "groups" needs at least one entry in groups')
    if scope_cfg.mode == "assigned" and not scope_cfg.application:
        raise ConfigError(
            f'{source}: [scope] mode = "assigned" needs application: the Learnster enterprise '
            "application's application (client) id, or its service principal's object id"
        )
    return scope_cfg


def _sync_section(data: Mapping[str, Any], source: str) -> SyncConfig:
    sync = table_of(data, "sync", source)
    no_unknown(sync, set(SyncConfig.__dataclass_fields__), source, "sync")
    region = string(sync, "phone_default_region", "sync", source).upper()
    if region:
        import phonenumbers

        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(
                f"{source}: [sync] phone_default_region {region!r} is not a region code "
                '(use a two-letter code such as "SE")'
            )
    return SyncConfig(
        on_hard_delete=choice(
            sync, "on_hard_delete", ("delete", "deactivate"), "delete", "sync", source
        ),
        max_deletions=whole(sync, "max_deletions", 500, "sync", source, low=0),
        max_deletion_percent=whole(
            sync, "max_deletion_percent", 50, "sync", source, low=0, high=100
        ),
        phone_default_region=region,
        member_batch_size=whole(sync, "member_batch_size", 100, "sync", source, low=1, high=1000),
        match_by=_match_by(sync, source),
    )


def _match_by(sync: Mapping[str, Any], source: str) -> tuple[str, ...]:
    value = sync.get("match_by", ["userName"])
    shown = ", ".join(f'"{a}"' for a in MATCH_ATTRIBUTES)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{source}: [sync] match_by must be a list of attributes ({shown})")
    for attribute in value:
        if attribute not in MATCH_ATTRIBUTES:
            raise ConfigError(
                f"{source}: [sync] match_by: {attribute!r} is not a matching attribute ({shown})"
            )
    if len(set(value)) != len(value):
        raise ConfigError(f"{source}: [sync] match_by names an attribute twice")
    return tuple(value)


def _schedule_section(data: Mapping[str, Any], source: str) -> ScheduleConfig:
    schedule = table_of(data, "schedule", source)
    no_unknown(schedule, set(ScheduleConfig.__dataclass_fields__), source, "schedule")
    schedule_cfg = ScheduleConfig(
        cron=string(schedule, "cron", "schedule", source) or "0 2 * * *",
        timezone=string(schedule, "timezone", "schedule", source) or "UTC",
        full_every_days=whole(schedule, "full_every_days", 7, "schedule", source, low=0),
    )
    if len(schedule_cfg.cron.split()) != 5:
        raise ConfigError(
            f"{source}: [schedule] cron {schedule_cfg.cron!r} must have 5 fields "
            "(minute hour day month weekday)"
        )
    from syncd.schedule import cron_trigger

    try:
        cron_trigger(schedule_cfg.cron, schedule_cfg.timezone)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return schedule_cfg


def _state_section(data: Mapping[str, Any], source: str) -> tuple[str, float]:
    """The state database's path and how many days its provisioning log is kept (fractions of
    a day too: a soak test's cycles are seconds apart)."""
    state = table_of(data, "state", source)
    no_unknown(state, {"database", "log_days"}, source, "state")
    database = string(state, "database", "state", source) or "/var/lib/syncd/state.db"
    return database, number(state, "log_days", 30.0, "state", source)


# auto: JSON lines under systemd (journald), text otherwise. The command line's --log-format
# (or $SYNCD_LOG_FORMAT) wins over [logging] format.
LOG_FORMATS = ("auto", "json", "text")


def _logging_section(data: Mapping[str, Any], source: str) -> str:
    table = table_of(data, "logging", source)
    no_unknown(table, {"format"}, source, "logging")
    return choice(table, "format", LOG_FORMATS, "auto", "logging", source)


def _notify_section(data: Mapping[str, Any], source: str) -> NotifyConfig:
    notify = table_of(data, "notify", source)
    no_unknown(notify, set(NotifyConfig.__dataclass_fields__), source, "notify")
    email_to = notify.get("email_to", [])
    if not isinstance(email_to, list) or not all(isinstance(e, str) for e in email_to):
        raise ConfigError(f"{source}: [notify] email_to must be a list of addresses")
    return NotifyConfig(
        email_to=tuple(email_to),
        smtp_host=string(notify, "smtp_host", "notify", source) or "localhost",
        smtp_port=whole(notify, "smtp_port", 25, "notify", source, low=1, high=65535),
    )


def _metrics_section(data: Mapping[str, Any], source: str) -> MetricsConfig:
    metrics = table_of(data, "metrics", source)
    no_unknown(metrics, set(MetricsConfig.__dataclass_fields__), source, "metrics")
    metrics_cfg = MetricsConfig(
        listen=string(metrics, "listen", "metrics", source),
        textfile=string(metrics, "textfile", "metrics", source),
    )
    if metrics_cfg.listen:
        _host, _, port = metrics_cfg.listen.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"{source}: [metrics] listen = {metrics_cfg.listen!r} must be host:port, "
                'e.g. "127.0.0.1:9464"'
            )
    return metrics_cfg


def _mapping_section(data: Mapping[str, Any], source: str) -> dict[str, str]:
    mapping = table_of(data, "mapping", source)
    no_unknown(mapping, {"user"}, source, "mapping")
    overrides = table_of(mapping, "user", source, "mapping.user")
    for key, value in overrides.items():
        if not isinstance(value, str):
            raise ConfigError(
                f'{source}: [mapping.user] {key!r} must be a Graph property name or ""'
            )
    # Validated against the mapping table here so a typo fails at start-up, not mid-cycle.
    from syncd.core.mapping import validate_overrides

    try:
        validate_overrides(overrides)
    except ValueError as exc:
        raise ConfigError(f"{source}: [mapping.user] {exc}") from None
    return dict(overrides)


def learnster_token(config: Config) -> Secret:
    """The Learnster Secret Token: env, systemd credential, or token_file."""
    return read_secret(
        "SYNCD_LEARNSTER_TOKEN",
        "learnster-token",
        config.learnster.token_file,
        "Learnster Secret Token",
    )


def graph_client_secret(config: Config) -> Secret:
    """The Graph app registration's client secret: env, systemd credential, or file."""
    return read_secret(
        "SYNCD_GRAPH_CLIENT_SECRET",
        "graph-client-secret",
        config.graph.client_secret_file,
        "Graph client secret",
    )


def _refuse_secrets(data: Mapping[str, Any], source: str, prefix: str = "") -> None:
    for key, value in data.items():
        if isinstance(value, Mapping):
            _refuse_secrets(value, source, f"{prefix}{key}.")
        elif key in _SECRET_KEYS:
            raise ConfigError(
                f"{source}: {prefix}{key} holds a secret; secrets are never read from the "
                "configuration file. Use the environment (SYNCD_GRAPH_CLIENT_SECRET, "
                "SYNCD_LEARNSTER_TOKEN), a systemd credential, or a *_file setting."
            )


def _response_bytes(table: Mapping[str, Any], section: str, source: str) -> int:
    low, high = RESPONSE_BYTES_RANGE
    return whole(
        table, "max_response_bytes", MAX_RESPONSE_BYTES, section, source, low=low, high=high
    )
