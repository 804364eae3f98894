"""Fixtures shared by every test folder: a real MQTT broker on a free port.

The broker is Mosquitto when it is installed, else the embedded amqtt broker; set
JOBRUNNER_TEST_BROKER=embedded (or mosquitto) to force one, or to mqtt://host:port to run
the integration tests against a broker of your own (RabbitMQ's MQTT plugin, a cluster
behind one address): the tests that stop or restart their broker are then skipped.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import psycopg
import pytest

from jobrunner.simulator.broker import BrokerKind, RunningBroker, external_broker, start_broker
from tests.support.postgres import NoPostgres, postgres_server

# Commands the tests start (`python -m jobrunner ...`) import this checkout's package, not
# whichever one the environment installed (another worktree of the same repository).
_ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_ROOT, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != _ROOT)]
)

CHOSEN = os.environ.get("JOBRUNNER_TEST_BROKER", "auto")
EXTERNAL = CHOSEN if "://" in CHOSEN else None
BROKER_KIND = cast(BrokerKind, "auto" if EXTERNAL else CHOSEN)


@pytest.fixture(scope="session")
def broker() -> Iterator[RunningBroker]:
    """One broker for the whole test session (tests use distinct accounts and client ids)."""
    if EXTERNAL is not None:
        yield external_broker(EXTERNAL)
        return
    with start_broker(BROKER_KIND) as running:
        yield running


@pytest.fixture
def own_broker() -> Iterator[RunningBroker]:
    """A broker for one test alone: for tests that stop or restart it."""
    if EXTERNAL is not None:
        pytest.skip(f"stops or restarts its broker; JOBRUNNER_TEST_BROKER is {EXTERNAL}")
    with start_broker(BROKER_KIND) as running:
        yield running


@pytest.fixture(autouse=True)
def _collected_after_each_test() -> Iterator[None]:
    """What a test leaves to the garbage collector is collected as it ends: an unclosed
    socket is then reported by the test that left it, never by a later one that happens to
    trigger a full collection (paho's clients live in reference cycles)."""
    yield
    gc.collect()


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A PostgreSQL server of the tests' own (see tests/postgres.py); its conninfo."""
    try:
        with postgres_server() as conninfo:
            yield conninfo
    except NoPostgres as reason:
        pytest.skip(str(reason))


@pytest.fixture
def state_db(postgres: str) -> str:
    """A new, empty database on that server, for one test: the conninfo of `--state-db`."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return postgres.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def dots_in_topics() -> None:
    """For tests that put a '.' in a topic level (a Kura PID as a resource): RabbitMQ's MQTT
    plugin turns it into a level separator, so they are skipped on an external broker."""
    if EXTERNAL is not None:
        pytest.skip(f"a '.' in a topic level; JOBRUNNER_TEST_BROKER is {EXTERNAL}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that talks to a real broker is an integration test (`-m "not integration"`
    runs the others, with no broker at all)."""
    for item in items:
        if {"broker", "own_broker"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
