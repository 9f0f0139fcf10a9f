-- The state database layout of schema version 1 (before the ledger_member table).
CREATE TABLE delta_link (
	resource VARCHAR NOT NULL, 
	link VARCHAR NOT NULL, 
	stored_at DATETIME NOT NULL, 
	PRIMARY KEY (resource)
);
CREATE TABLE escrow (
	object_id VARCHAR NOT NULL, 
	object_type VARCHAR NOT NULL, 
	label VARCHAR NOT NULL, 
	operation VARCHAR NOT NULL, 
	error VARCHAR NOT NULL, 
	attempts INTEGER NOT NULL, 
	first_failed_at DATETIME NOT NULL, 
	next_retry_at DATETIME NOT NULL, 
	PRIMARY KEY (object_id)
);
CREATE TABLE ledger_group (
	graph_id VARCHAR NOT NULL, 
	scim_id VARCHAR NOT NULL, 
	display_name VARCHAR NOT NULL, 
	members VARCHAR NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (graph_id)
);
CREATE TABLE ledger_user (
	graph_id VARCHAR NOT NULL, 
	scim_id VARCHAR NOT NULL, 
	attrs VARCHAR NOT NULL, 
	adopted BOOLEAN NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (graph_id)
);
CREATE TABLE meta (
	"key" VARCHAR NOT NULL, 
	value VARCHAR NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE TABLE run (
	id INTEGER NOT NULL, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	mode VARCHAR NOT NULL, 
	dry_run BOOLEAN NOT NULL, 
	counts VARCHAR NOT NULL, 
	exit_code INTEGER, 
	message VARCHAR NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE snapshot_group (
	id VARCHAR NOT NULL, 
	data VARCHAR NOT NULL, 
	removed VARCHAR, 
	PRIMARY KEY (id)
);
CREATE TABLE snapshot_user (
	id VARCHAR NOT NULL, 
	upn VARCHAR NOT NULL, 
	data VARCHAR NOT NULL, 
	removed VARCHAR, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_ledger_group_scim_id ON ledger_group (scim_id);
CREATE INDEX ix_ledger_user_scim_id ON ledger_user (scim_id);
CREATE INDEX ix_snapshot_user_upn ON snapshot_user (upn);
