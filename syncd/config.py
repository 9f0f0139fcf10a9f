"""Load and validate syncd.toml; secrets are refused there and read from elsewhere (credentials)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from syncd.core.filters import ScopeFilter, parse_filters
from syncd.core.records import is_user_attribute
from syncd.credentials import Secret, is_loopback_host, read_secret
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


@dataclass(frozen=True)
class LearnsterConfig:
    tenant_url: str
    token_file: str = ""
    max_concurrency: int = 8
    timeout_seconds: float = 60.0
    ca_file: str = ""
    max_requests_per_second: float = 0.0  # 0 = no client-side rate limit


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
    }
    _no_unknown(data, known, source, "")
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
        user_mapping_overrides=_mapping_section(data, source),
        source_path=source,
    )


def _graph_section(data: Mapping[str, Any], source: str) -> GraphConfig:
    graph = _section(data, "graph", source)
    graph_cfg = GraphConfig(
        tenant_id=_str(graph, "tenant_id", "graph", source, required=True),
        client_id=_str(
            graph, "client_id", "graph", source, required=graph.get("auth") != "access_token"
        ),
        auth=_choice(graph, "auth", GRAPH_AUTH_MODES, "client_secret", "graph", source),
        client_secret_file=_str(graph, "client_secret_file", "graph", source),
        certificate_path=_str(graph, "certificate_path", "graph", source),
        base_url=_url(graph, "base_url", "https://graph.microsoft.com/v1.0", "graph", source),
        authority=_str(graph, "authority", "graph", source) or "login.microsoftonline.com",
        ca_file=_str(graph, "ca_file", "graph", source),
    )
    _no_unknown(graph, set(GraphConfig.__dataclass_fields__), source, "graph")
    if graph_cfg.auth == "certificate" and not graph_cfg.certificate_path:
        raise ConfigError(f'{source}: [graph] auth = "certificate" needs certificate_path')
    return graph_cfg


def _learnster_section(data: Mapping[str, Any], source: str) -> LearnsterConfig:
    learnster = _section(data, "learnster", source)
    _no_unknown(learnster, set(LearnsterConfig.__dataclass_fields__), source, "learnster")
    return LearnsterConfig(
        tenant_url=_url(learnster, "tenant_url", None, "learnster", source).rstrip("/"),
        token_file=_str(learnster, "token_file", "learnster", source),
        max_concurrency=_int(learnster, "max_concurrency", 8, "learnster", source, low=1, high=64),
        timeout_seconds=_number(learnster, "timeout_seconds", 60.0, "learnster", source),
        ca_file=_str(learnster, "ca_file", "learnster", source),
        max_requests_per_second=_number(
            learnster, "max_requests_per_second", 0.0, "learnster", source, allow_zero=True
        ),
    )


def _scope_section(data: Mapping[str, Any], source: str) -> ScopeConfig:
    scope = _section(data, "scope", source)
    known = {*ScopeConfig.__dataclass_fields__, "filter"} - {"filters"}
    _no_unknown(scope, known, source, "scope")
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
        mode=_choice(scope, "mode", ("all", "groups", "assigned"), "all", "scope", source),
        groups=tuple(groups),
        application=_str(scope, "application", "scope", source),
        nested=_bool(scope, "nested", False, "scope", source),
        sync_groups=_choice(
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
    sync = _section(data, "sync", source)
    _no_unknown(sync, set(SyncConfig.__dataclass_fields__), source, "sync")
    region = _str(sync, "phone_default_region", "sync", source).upper()
    if region:
        import phonenumbers

        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(
                f"{source}: [sync] phone_default_region {region!r} is not a region code "
                '(use a two-letter code such as "SE")'
            )
    return SyncConfig(
        on_hard_delete=_choice(
            sync, "on_hard_delete", ("delete", "deactivate"), "delete", "sync", source
        ),
        max_deletions=_int(sync, "max_deletions", 500, "sync", source, low=0),
        max_deletion_percent=_int(
            sync, "max_deletion_percent", 50, "sync", source, low=0, high=100
        ),
        phone_default_region=region,
        member_batch_size=_int(sync, "member_batch_size", 100, "sync", source, low=1, high=1000),
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
    schedule = _section(data, "schedule", source)
    _no_unknown(schedule, set(ScheduleConfig.__dataclass_fields__), source, "schedule")
    schedule_cfg = ScheduleConfig(
        cron=_str(schedule, "cron", "schedule", source) or "0 2 * * *",
        timezone=_str(schedule, "timezone", "schedule", source) or "UTC",
        full_every_days=_int(schedule, "full_every_days", 7, "schedule", source, low=0),
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
    state = _section(data, "state", source)
    _no_unknown(state, {"database", "log_days"}, source, "state")
    database = _str(state, "database", "state", source) or "/var/lib/syncd/state.db"
    return database, _number(state, "log_days", 30.0, "state", source)


def _notify_section(data: Mapping[str, Any], source: str) -> NotifyConfig:
    notify = _section(data, "notify", source)
    _no_unknown(notify, set(NotifyConfig.__dataclass_fields__), source, "notify")
    email_to = notify.get("email_to", [])
    if not isinstance(email_to, list) or not all(isinstance(e, str) for e in email_to):
        raise ConfigError(f"{source}: [notify] email_to must be a list of addresses")
    return NotifyConfig(
        email_to=tuple(email_to),
        smtp_host=_str(notify, "smtp_host", "notify", source) or "localhost",
        smtp_port=_int(notify, "smtp_port", 25, "notify", source, low=1, high=65535),
    )


def _metrics_section(data: Mapping[str, Any], source: str) -> MetricsConfig:
    metrics = _section(data, "metrics", source)
    _no_unknown(metrics, set(MetricsConfig.__dataclass_fields__), source, "metrics")
    metrics_cfg = MetricsConfig(
        listen=_str(metrics, "listen", "metrics", source),
        textfile=_str(metrics, "textfile", "metrics", source),
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
    mapping = _section(data, "mapping", source)
    _no_unknown(mapping, {"user"}, source, "mapping")
    overrides = _section(mapping, "user", source, "mapping.user")
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


def _no_unknown(table: Mapping[str, Any], known: set[str], source: str, section: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        where = f"[{section}] " if section else ""
        raise ConfigError(
            f"{source}: unknown setting {where}{unknown[0]!r}; known: {', '.join(sorted(known))}"
        )


def _section(
    data: Mapping[str, Any], name: str, source: str, label: str | None = None
) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: [{label or name}] must be a table")
    return value


def _str(
    table: Mapping[str, Any], key: str, section: str, source: str, *, required: bool = False
) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"{source}: [{section}] {key} must be a string")
    if required and not value.strip():
        raise ConfigError(f"{source}: [{section}] {key} is required")
    return value.strip()


def _choice(
    table: Mapping[str, Any],
    key: str,
    choices: tuple[str, ...],
    default: str,
    section: str,
    source: str,
) -> str:
    value = table.get(key, default)
    if value not in choices:
        shown = " | ".join(c for c in choices if c)
        raise ConfigError(f"{source}: [{section}] {key} = {value!r} must be one of: {shown}")
    return str(value)


def _int(
    table: Mapping[str, Any],
    key: str,
    default: int,
    section: str,
    source: str,
    *,
    low: int | None = None,
    high: int | None = None,
) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{source}: [{section}] {key} must be a whole number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{source}: [{section}] {key} = {value} is out of range [{low}, {high}]")
    return value


def _number(
    table: Mapping[str, Any],
    key: str,
    default: float,
    section: str,
    source: str,
    *,
    allow_zero: bool = False,
) -> float:
    value = table.get(key, default)
    valid = isinstance(value, int | float) and not isinstance(value, bool)
    if not valid or value < 0 or (value == 0 and not allow_zero):
        kind = "a number ≥ 0" if allow_zero else "a positive number"
        raise ConfigError(f"{source}: [{section}] {key} must be {kind}")
    return float(value)


def _bool(table: Mapping[str, Any], key: str, default: bool, section: str, source: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{source}: [{section}] {key} must be true or false")
    return value


def _url(table: Mapping[str, Any], key: str, default: str | None, section: str, source: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source}: [{section}] {key} is required (an https:// URL)")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"{source}: [{section}] {key} = {value!r} is not a URL")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"{source}: [{section}] {key} must use https (plain http is only allowed on loopback)"
        )
    return value
