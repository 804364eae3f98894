"""Fixtures shared by every test folder: a real MQTT broker on a free port.

The broker is Mosquitto when it is installed, else the embedded amqtt broker; set
JOBRUNNER_TEST_BROKER=embedded (or mosquitto) to force one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import cast

import pytest

from jobrunner.simulator.broker import BrokerKind, RunningBroker, start_broker

BROKER_KIND = cast(BrokerKind, os.environ.get("JOBRUNNER_TEST_BROKER", "auto"))


@pytest.fixture(scope="session")
def broker() -> Iterator[RunningBroker]:
    """One broker for the whole test session (tests use distinct accounts and client ids)."""
    with start_broker(BROKER_KIND) as running:
        yield running


@pytest.fixture
def own_broker() -> Iterator[RunningBroker]:
    """A broker for one test alone: for tests that stop or restart it."""
    with start_broker(BROKER_KIND) as running:
        yield running


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that talks to a real broker is an integration test (`-m "not integration"`
    runs the others, with no broker at all)."""
    for item in items:
        if {"broker", "own_broker"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
