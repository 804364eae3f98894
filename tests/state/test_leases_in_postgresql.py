"""Leases with fencing, against a real PostgreSQL started for these tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from jobrunner.errors import LeaseLostError, StateVersionError
from jobrunner.state.opening import open_state
from jobrunner.state.ownership import LeasedOwners
from jobrunner.state.stores import schema
from jobrunner.state.stores.leases import Leases
from jobrunner.state.stores.schema import SCHEMA_VERSION

LEASE = 1.0  # seconds: short, so that expiry is quick to reach


@pytest.fixture
def database(state_db: str) -> str:
    return state_db


@pytest.fixture
def job() -> tuple[str, str]:
    return "acme", f"job-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def runners(database: str) -> Iterator[tuple[Leases, Leases]]:
    a, b = Leases(database, "runner-a", LEASE), Leases(database, "runner-b", LEASE)
    yield a, b
    a.close()
    b.close()


def test_one_owner_at_a_time(runners: tuple[Leases, Leases], job: tuple[str, str]) -> None:
    a, b = runners
    lease = a.acquire(*job)
    assert lease is not None and lease.owner == "runner-a" and lease.epoch == 1
    assert b.acquire(*job) is None
    assert a.acquire(*job) == lease  # still ours
    current = b.current(*job)
    assert current is not None and current.owner == "runner-a"


def test_an_expired_lease_is_taken_over_and_the_old_owner_is_fenced_off(
    runners: tuple[Leases, Leases], job: tuple[str, str]
) -> None:
    a, b = runners
    old = a.acquire(*job)
    assert old is not None
    time.sleep(LEASE + 0.3)  # runner-a paused past its lease (SIGSTOP, a partition)
    new = b.acquire(*job)
    assert new is not None and new.owner == "runner-b" and new.epoch == old.epoch + 1

    with pytest.raises(LeaseLostError, match=r"runner-b holds it now \(epoch 2\)"):
        a.renew(old)
    with pytest.raises(LeaseLostError), a.fenced(old) as cursor:
        cursor.execute("CREATE TABLE never_made (x int)")
    with b.fenced(new) as cursor:
        cursor.execute("SELECT 1")
    assert b.renew(new).expires_at > new.expires_at
    tables = a.connection.execute("SELECT to_regclass('never_made')").fetchone()
    assert tables == (None,)  # the fenced-off write left nothing


def test_a_paused_owner_that_nobody_replaced_must_acquire_again(
    runners: tuple[Leases, Leases], job: tuple[str, str]
) -> None:
    a, _ = runners
    old = a.acquire(*job)
    assert old is not None
    time.sleep(LEASE + 0.3)
    with pytest.raises(LeaseLostError, match="nobody holds it now"):
        a.renew(old)
    again = a.acquire(*job)
    assert again is not None and again.epoch == old.epoch + 1  # its old writes stay fenced


def test_a_released_lease_is_free_at_once(
    runners: tuple[Leases, Leases], job: tuple[str, str]
) -> None:
    a, b = runners
    lease = a.acquire(*job)
    assert lease is not None
    a.release(lease)
    taken = b.acquire(*job)
    assert taken is not None and taken.owner == "runner-b"


def test_a_device_is_claimed_by_one_job_across_runners(
    runners: tuple[Leases, Leases], job: tuple[str, str]
) -> None:
    a, b = runners
    first = a.acquire(*job)
    second = b.acquire(job[0], job[1] + "-other")
    assert first is not None and second is not None
    device = f"gw-{uuid.uuid4().hex[:6]}"
    assert a.claim_device(first, device)
    assert a.claim_device(first, device)  # again: still ours
    assert not b.claim_device(second, device)
    a.release_device(first, device)
    assert b.claim_device(second, device)
    # a claim whose lease expired is free: the device of a dead runner is not kept for ever
    other = f"gw-{uuid.uuid4().hex[:6]}"
    assert b.claim_device(second, other)
    time.sleep(LEASE + 0.3)
    renewed = a.acquire(*job)
    assert renewed is not None
    assert a.claim_device(renewed, other)


def test_runners_alive(runners: tuple[Leases, Leases]) -> None:
    a, b = runners
    a.heartbeat()
    b.heartbeat()
    assert {"runner-a", "runner-b"} <= set(a.alive())
    time.sleep(LEASE + 0.3)
    a.heartbeat()
    assert "runner-b" not in a.alive() and "runner-a" in a.alive()


def test_a_schema_from_a_newer_jobrunner_is_refused(database: str) -> None:
    name = f"newer_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    conninfo = database.rsplit("/", 1)[0] + f"/{name}"
    first = Leases(conninfo, "runner-a", LEASE)
    first.connection.execute("UPDATE jobrunner_meta SET value = '99' WHERE key = 'schema'")
    first.close()
    with pytest.raises(StateVersionError, match=r"newer jobrunner \(schema 99"):
        Leases(conninfo, "runner-a", LEASE)


def test_a_runner_gone_for_a_day_is_forgotten_and_one_that_stops_says_goodbye(
    runners: tuple[Leases, Leases],
) -> None:
    a, b = runners
    a.heartbeat()
    b.heartbeat()
    a.connection.execute(
        "UPDATE jobrunner_runners SET seen_at = now() - interval '25 hours'"
        " WHERE client_id = 'runner-b'"
    )
    a.heartbeat()
    rows = a.connection.execute("SELECT client_id FROM jobrunner_runners").fetchall()
    assert rows == [("runner-a",)]
    a.goodbye()
    assert a.alive() == []


def _heard_ago(leases: Leases, client_id: str, seconds: float) -> None:
    """Date the runner's last heartbeat `seconds` back, as if it had died then (SIGKILL)."""
    leases.connection.execute(
        "UPDATE jobrunner_runners SET seen_at = now() - make_interval(secs => %s)"
        " WHERE client_id = %s",
        (seconds, client_id),
    )


def test_a_runner_is_alive_for_its_own_lease_after_its_last_heartbeat(state_db: str) -> None:
    short, long = Leases(state_db, "runner-short", 5.0), Leases(state_db, "runner-long", 120.0)
    state = open_state(Path("unused"), state_db)
    try:
        short.heartbeat()
        long.heartbeat()
        _heard_ago(short, "runner-short", 20)  # killed 20 s ago: its 5 s lease is long over
        _heard_ago(short, "runner-long", 90)  # killed 90 s ago: its 120 s lease still holds
        assert short.alive() == ["runner-long"]
        owners = state.owners
        assert isinstance(owners, LeasedOwners)
        assert owners.alive() == ["runner-long"]  # what `status` lists
        assert "runners alive: runner-long;" in owners.describe()
        _heard_ago(short, "runner-long", 121)
        assert owners.alive() == [] and not owners.daemon_runs()
    finally:
        short.close()
        long.close()
        state.storage.close()


def test_a_database_of_the_schema_before_is_migrated_and_its_runners_kept(
    database: str,
) -> None:
    name = f"older_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    conninfo = database.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(conninfo, autocommit=True) as old:  # of schema 1: its runners table
        old.execute(
            "CREATE TABLE jobrunner_meta (key text PRIMARY KEY, value text NOT NULL);"
            "INSERT INTO jobrunner_meta VALUES ('schema', '1');"
            "CREATE TABLE jobrunner_runners ("
            " client_id text PRIMARY KEY, seen_at timestamptz NOT NULL);"
            "INSERT INTO jobrunner_runners VALUES ('runner-old', now() - interval '20 seconds');"
            "INSERT INTO jobrunner_runners VALUES ('runner-gone', now() - interval '40 seconds')"
        )
    runner = Leases(conninfo, "runner-new", 60.0)
    try:
        found = runner.connection.execute(
            "SELECT value FROM jobrunner_meta WHERE key = 'schema'"
        ).fetchone()
        assert found == (str(SCHEMA_VERSION),)
        # Heartbeats of schema 1 keep its rule: alive 30 s after them.
        assert runner.alive() == ["runner-old"]
        runner.heartbeat()
        assert runner.alive() == ["runner-new", "runner-old"]
        lease = runner.acquire("acme", "x")  # the other tables were made as well
        assert lease is not None and lease.owner == "runner-new"
    finally:
        runner.close()
    again = Leases(conninfo, "runner-new", 60.0)  # opened again: nothing more to do
    try:
        assert again.alive() == ["runner-new", "runner-old"]
    finally:
        again.close()


def test_a_runner_frozen_inside_its_fence_does_not_block_the_takeover(
    database: str, job: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner frozen (SIGSTOP, a paused VM) inside a fenced transaction holds its lease's
    row locked: the server ends its session once it sits idle in the transaction past
    IDLE_IN_TRANSACTION, and the other runner takes the expired lease over."""
    monkeypatch.setattr(schema, "IDLE_IN_TRANSACTION", "1s")
    a, b = Leases(database, "runner-a", LEASE), Leases(database, "runner-b", LEASE)
    try:
        old = a.acquire(*job)
        assert old is not None
        with (
            pytest.raises(OSError, match=r"cannot be reached: terminating connection"),
            a.fenced(old),  # frozen here, its fence held
        ):
            time.sleep(LEASE + 0.3)  # past its lease
            # Without the timeout this waits for the frozen runner for ever: bounded.
            b.connection.execute("SET statement_timeout = '30s'")
            new = b.acquire(*job)
            assert new is not None and new.owner == "runner-b"
            assert new.epoch == old.epoch + 1
    finally:
        a.close()
        b.close()
