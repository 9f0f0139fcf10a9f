"""Generated from syncd/adapters/sqlite/schema.py by ``python -m
syncd.adapters.sqlite.schema syncd/adapters/sqlite/schema_sql.py``: do not edit. The
state database's CREATE statements, run by Store where tables are missing (no
SQLAlchemy at run time)."""

STATEMENTS: dict[str, tuple[str, ...]] = {
    "create_intent": (
        "CREATE TABLE create_intent ( graph_id VARCHAR NOT NULL, user_name VARCHAR NOT NULL, at DATETIME NOT NULL, PRIMARY KEY (graph_id) )",
    ),
    "delta_link": (
        "CREATE TABLE delta_link ( resource VARCHAR NOT NULL, link VARCHAR NOT NULL, stored_at DATETIME NOT NULL, PRIMARY KEY (resource) )",
    ),
    "escrow": (
        "CREATE TABLE escrow ( object_id VARCHAR NOT NULL, object_type VARCHAR NOT NULL, label VARCHAR NOT NULL, operation VARCHAR NOT NULL, error VARCHAR NOT NULL, attempts INTEGER NOT NULL, first_failed_at DATETIME NOT NULL, next_retry_at DATETIME NOT NULL, PRIMARY KEY (object_id) )",
    ),
    "ledger_group": (
        "CREATE TABLE ledger_group ( graph_id VARCHAR NOT NULL, scim_id VARCHAR NOT NULL, display_name VARCHAR NOT NULL, updated_at DATETIME NOT NULL, PRIMARY KEY (graph_id) )",
        "CREATE INDEX ix_ledger_group_scim_id ON ledger_group (scim_id)",
    ),
    "ledger_member": (
        "CREATE TABLE ledger_member ( group_id VARCHAR NOT NULL, user_id VARCHAR NOT NULL, PRIMARY KEY (group_id, user_id) )",
        "CREATE INDEX ix_ledger_member_user_id ON ledger_member (user_id)",
    ),
    "ledger_user": (
        "CREATE TABLE ledger_user ( graph_id VARCHAR NOT NULL, scim_id VARCHAR NOT NULL, attrs VARCHAR NOT NULL, adopted BOOLEAN NOT NULL, updated_at DATETIME NOT NULL, PRIMARY KEY (graph_id) )",
        "CREATE INDEX ix_ledger_user_scim_id ON ledger_user (scim_id)",
    ),
    "meta": (
        'CREATE TABLE meta ( "key" VARCHAR NOT NULL, value VARCHAR NOT NULL, PRIMARY KEY ("key") )',
    ),
    "provisioning_log": (
        "CREATE TABLE provisioning_log ( id INTEGER NOT NULL, run_id INTEGER NOT NULL, at DATETIME NOT NULL, object_id VARCHAR NOT NULL, label VARCHAR NOT NULL, operation VARCHAR NOT NULL, outcome VARCHAR NOT NULL, detail VARCHAR NOT NULL, changes VARCHAR NOT NULL, PRIMARY KEY (id) )",
        "CREATE INDEX ix_provisioning_log_object_id ON provisioning_log (object_id)",
        "CREATE INDEX ix_provisioning_log_run_id ON provisioning_log (run_id)",
    ),
    "run": (
        "CREATE TABLE run ( id INTEGER NOT NULL, started_at DATETIME NOT NULL, finished_at DATETIME, mode VARCHAR NOT NULL, dry_run BOOLEAN NOT NULL, counts VARCHAR NOT NULL, exit_code INTEGER, message VARCHAR NOT NULL, PRIMARY KEY (id) )",
    ),
    "snapshot_group": (
        "CREATE TABLE snapshot_group ( id VARCHAR NOT NULL, data VARCHAR NOT NULL, removed VARCHAR, PRIMARY KEY (id) )",
    ),
    "snapshot_user": (
        "CREATE TABLE snapshot_user ( id VARCHAR NOT NULL, upn VARCHAR NOT NULL, upn_key VARCHAR NOT NULL, data VARCHAR NOT NULL, removed VARCHAR, PRIMARY KEY (id) )",
        "CREATE INDEX ix_snapshot_user_upn_key ON snapshot_user (upn_key)",
    ),
}

TABLES = frozenset(
    [
        "create_intent",
        "delta_link",
        "escrow",
        "ledger_group",
        "ledger_member",
        "ledger_user",
        "meta",
        "provisioning_log",
        "run",
        "snapshot_group",
        "snapshot_user",
    ]
)
