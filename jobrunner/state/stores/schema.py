"""The state database's tables, created on first use and versioned as a whole.

    jobrunner_meta (key, value)                          schema version
    jobrunner_records (key, generation, size, head)      each record: replaced whole (head)
    jobrunner_appends (key, start, data)                 ... and what was appended after it
    jobrunner_leases (scope, job, owner, epoch, expires_at)
    jobrunner_device_claims (scope, client_id, job, owner, epoch)
    jobrunner_runners (client_id, seen_at, lease)        who is alive: until seen_at + lease

Record keys are the paths of the state directory's layout (`scopes/acme/jobs/x/job.json`),
in the "C" collation so that the records under a folder are one range of the primary key.
A database of an earlier schema is migrated when it is opened (`_MIGRATIONS`, in one
transaction, one migrator at a time); one written by a newer jobrunner (a higher schema
version) is refused with a message.
"""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow

from jobrunner.errors import StateError, StateVersionError
from jobrunner.state.stores.base import redacted

SCHEMA_VERSION = 2

_TABLES = """
CREATE TABLE IF NOT EXISTS jobrunner_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS jobrunner_records (
    key text COLLATE "C" PRIMARY KEY, generation bigint NOT NULL, size bigint NOT NULL,
    head bytea NOT NULL);
CREATE TABLE IF NOT EXISTS jobrunner_appends (
    key text COLLATE "C" NOT NULL, start bigint NOT NULL, data bytea NOT NULL,
    PRIMARY KEY (key, start));
CREATE TABLE IF NOT EXISTS jobrunner_leases (
    scope text NOT NULL, job text NOT NULL, owner text NOT NULL, epoch bigint NOT NULL,
    expires_at timestamptz NOT NULL, PRIMARY KEY (scope, job));
CREATE TABLE IF NOT EXISTS jobrunner_device_claims (
    scope text NOT NULL, client_id text NOT NULL, job text NOT NULL, owner text NOT NULL,
    epoch bigint NOT NULL, PRIMARY KEY (scope, client_id));
CREATE TABLE IF NOT EXISTS jobrunner_runners (
    client_id text PRIMARY KEY, seen_at timestamptz NOT NULL,
    lease double precision NOT NULL DEFAULT 30);
CREATE OR REPLACE FUNCTION jobrunner_append(k text, d bytea, h bytea) RETURNS void AS $$
DECLARE
    s bigint;
BEGIN
    INSERT INTO jobrunner_records VALUES (k, 1, 0, ''::bytea) ON CONFLICT (key) DO NOTHING;
    SELECT size INTO s FROM jobrunner_records WHERE key = k FOR UPDATE;
    IF s = 0 THEN
        d := h || d;
    END IF;
    INSERT INTO jobrunner_appends VALUES (k, s, d);
    UPDATE jobrunner_records SET size = s + length(d) WHERE key = k;
END
$$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION jobrunner_fence(s text[], j text[], e bigint[], o text)
RETURNS void AS $$
DECLARE
    missing text;
BEGIN
    PERFORM 1 FROM jobrunner_leases l
        JOIN unnest(s, j, e) AS w(scope, job, epoch)
          ON l.scope = w.scope AND l.job = w.job AND l.epoch = w.epoch
        WHERE l.owner = o AND l.expires_at >= now()
        FOR SHARE OF l;
    SELECT string_agg(w.scope || '/' || w.job, E'\n') INTO missing
        FROM unnest(s, j, e) AS w(scope, job, epoch)
        WHERE NOT EXISTS (
            SELECT 1 FROM jobrunner_leases l
            WHERE l.scope = w.scope AND l.job = w.job AND l.epoch = w.epoch
              AND l.owner = o AND l.expires_at >= now());
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'a lease is no longer this runner''s'
            USING ERRCODE = 'JR001', DETAIL = missing;
    END IF;
END
$$ LANGUAGE plpgsql;
"""

_MIGRATIONS: dict[int, str] = {
    # Each runner says how long its lease is: it is alive for that long after its heartbeat.
    # Rows of schema 1 keep schema 1's rule, 30 s (so does a schema-1 runner still running).
    2: "ALTER TABLE jobrunner_runners ADD COLUMN IF NOT EXISTS"
    " lease double precision NOT NULL DEFAULT 30",
}
"""What brings a database of the schema before each version to it, by version."""

FENCE_LOST = "JR001"
"""The SQLSTATE of `jobrunner_fence` when a lease is no longer the writer's; its DETAIL names
the jobs, `SCOPE/JOB` a line (`lost_jobs`)."""


def lost_jobs(error: psycopg.Error) -> frozenset[tuple[str, str]] | None:
    """The jobs `jobrunner_fence` found without their lease; None for any other error."""
    if error.sqlstate != FENCE_LOST:
        return None
    lines = (error.diag.message_detail or "").splitlines()
    return frozenset((scope, job) for scope, _, job in (line.partition("/") for line in lines))


IDLE_IN_TRANSACTION = "10s"
"""How long the server lets a session of ours sit idle inside a transaction before it ends
the session. A runner's transactions last one round trip; one left open is a runner that is
frozen (a paused VM, SIGSTOP) while it held the fence of its leases, and those row locks
would otherwise block every other runner's takeover of its jobs for as long as it stays
frozen. Its session ended, the frozen runner finds its connection broken when it wakes, and
its leases lost."""


def connect(conninfo: str) -> psycopg.Connection[TupleRow]:
    """A connection (autocommit) to a prepared state database; StateError when there is none."""
    try:
        connection = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
        connection.execute(
            "SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
            (IDLE_IN_TRANSACTION,),
        )
    except psycopg.Error as error:
        raise StateError(
            f"cannot connect to the state database {redacted(conninfo)}: {error}".strip()
        ) from None
    try:
        prepare(connection)
    except BaseException:
        connection.close()
        raise
    return connection


def prepare(connection: psycopg.Connection[TupleRow]) -> None:
    """Create the tables on first use, migrate those of an earlier schema; refuse a schema
    written by a newer jobrunner. A database already at this version is left as it is (no
    DDL, no lock: every command and every reconnect comes here)."""
    if _version(connection) == SCHEMA_VERSION:
        return
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(7401)")  # one migrator at a time
        found = _version(connection)
        if found is not None and found > SCHEMA_VERSION:
            raise StateVersionError(
                f"the state database was written by a newer jobrunner (schema {found};"
                f" this jobrunner knows up to {SCHEMA_VERSION}); upgrade jobrunner"
            )
        if found == SCHEMA_VERSION:
            return  # another process migrated it while this one waited for the lock
        connection.execute(_TABLES)  # tables made by a later schema (none yet) are made here
        for version, migration in sorted(_MIGRATIONS.items()):
            if found is not None and found < version:
                connection.execute(migration)
        connection.execute(
            "INSERT INTO jobrunner_meta VALUES ('schema', %s)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (str(SCHEMA_VERSION),),
        )


def _version(connection: psycopg.Connection[TupleRow]) -> int | None:
    """The schema version the database records; None before the first jobrunner."""
    row = connection.execute("SELECT to_regclass('jobrunner_meta') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return None
    found = connection.execute("SELECT value FROM jobrunner_meta WHERE key = 'schema'").fetchone()
    return None if found is None else int(str(found[0]))
