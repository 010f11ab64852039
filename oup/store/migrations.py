"""Versioned schema of the PostGIS store. Append a migration; never edit an applied one.

``migrate`` runs at store start-up under an advisory lock, so API workers and ingesters
starting together apply each migration once.
"""
from __future__ import annotations

from oup.store.events import POSTGIS_SCHEMA as POSTGIS_EVENTS_SCHEMA
from oup.store.pg_growth import SCHEMA as GROWTH_SCHEMA
from oup.store.placeholders import pg_sql

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "layers, observations (partitioned by month of phenomenon time), dead letters, "
        "ingest counters", """
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE TABLE oup_layers (table_name text PRIMARY KEY, meta jsonb NOT NULL);
-- times are microseconds since 1970-01-01 UTC, as in the embedded store
CREATE TABLE oup_observations (
  id bigint GENERATED ALWAYS AS IDENTITY, sensor_id text NOT NULL,
  phenomenon_time bigint NOT NULL, result double precision NOT NULL, result_time bigint,
  dedupe_key text, revision integer NOT NULL DEFAULT 0, stored_at bigint NOT NULL,
  PRIMARY KEY (sensor_id, phenomenon_time)
) PARTITION BY RANGE (phenomenon_time);
CREATE INDEX ON oup_observations (phenomenon_time);
CREATE INDEX ON oup_observations (id);
-- a unique index on a partitioned table must hold the partition key: device keys
-- (LoRaWAN EUI + session + frame counter) live in a table of their own
CREATE TABLE oup_observation_keys (dedupe_key text PRIMARY KEY);
CREATE TABLE oup_dead_letters (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, received_at bigint NOT NULL,
  topic text NOT NULL, reason text NOT NULL, payload bytea, payload_size integer NOT NULL,
  replayed boolean NOT NULL DEFAULT false);
CREATE TABLE oup_ingest_counters (
  ingester text PRIMARY KEY, received bigint NOT NULL DEFAULT 0,
  stored bigint NOT NULL DEFAULT 0, duplicates bigint NOT NULL DEFAULT 0,
  dead_lettered bigint NOT NULL DEFAULT 0, observations_stored bigint NOT NULL DEFAULT 0,
  observations_corrected bigint NOT NULL DEFAULT 0, updated_at bigint);
"""),
    (2, "change events (oup.events) and their named state", POSTGIS_EVENTS_SCHEMA),
    (3, "layers grown by feature writes, a row each (oup.store.pg_growth)", GROWTH_SCHEMA),
]

_LOCK = 7_400_391  # advisory lock id: "oup migrations"


def migrate(con) -> int:
    """Apply the missing migrations; return the schema version."""
    with con.transaction():
        con.execute(pg_sql("SELECT pg_advisory_xact_lock(?)"), (_LOCK,))
        con.execute("CREATE TABLE IF NOT EXISTS oup_schema_migrations (version integer "
                    "PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL "
                    "DEFAULT now())")
        done = {r[0] for r in con.execute("SELECT version FROM oup_schema_migrations")}
        for version, description, sql in MIGRATIONS:
            if version in done:
                continue
            con.execute(sql)
            con.execute(pg_sql("INSERT INTO oup_schema_migrations (version, description) "
                               "VALUES (?, ?)"), (version, description))
        return max([v for v, _, _ in MIGRATIONS] + list(done))
