"""Hypothesis strategies and settings shared by the fuzz tests of the device layer.

`FUZZ` keeps the default run deterministic and short: `derandomize=True` draws the same
examples on every run (no database, no seed to carry around); JOBRUNNER_FUZZ_EXAMPLES raises
the number of examples for a longer hunt (`JOBRUNNER_FUZZ_EXAMPLES=20000 pytest -k fuzz`).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from jobrunner.device.payload import KuraPayload, Metric, MetricType, Position

EXAMPLES = int(os.environ.get("JOBRUNNER_FUZZ_EXAMPLES", "150"))

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

METRIC_NAMES = (
    # What replies, notifications and births carry, as the operations and the inbound read them.
    "response.code",
    "response.exception.message",
    "response.exception.stack",
    "request.id",
    "requester.client.id",
    "client.id",
    "job.id",
    "operation.id",
    "command.exit.code",
    "command.stdout",
    "command.stderr",
    "command.timedout",
    "dp.name",
    "dp.version",
    "dp.download.status",
    "dp.download.progress",
    "dp.download.error.message",
    "dp.install.status",
    "dp.install.progress",
    "dp.install.error.message",
    "dp.uninstall.status",
    "dp.uninstall.progress",
    "dp.uninstall.error.message",
    "status",
    "progress",
    "message",
    "display_name",
    "application_ids",
    "uptime",
)
STATUS_WORDS = ("IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "ALREADY DONE", "IDLE", "")

_INT32 = st.integers(-(2**31), 2**31 - 1)
_INT64 = st.integers(-(2**63), 2**63 - 1)


def metrics(floats: bool = True) -> st.SearchStrategy[Metric]:
    """A metric of any type, with values a device might send (and some it should not)."""
    choices = [
        _INT32.map(lambda v: Metric(MetricType.INT32, v)),
        st.sampled_from((200, 400, 404, 500, 0, -1)).map(lambda v: Metric(MetricType.INT32, v)),
        _INT64.map(lambda v: Metric(MetricType.INT64, v)),
        st.booleans().map(lambda v: Metric(MetricType.BOOL, v)),
        (st.text(max_size=40) | st.sampled_from(STATUS_WORDS)).map(
            lambda v: Metric(MetricType.STRING, v)
        ),
        st.binary(max_size=40).map(lambda v: Metric(MetricType.BYTES, v)),
    ]
    if floats:
        choices.append(st.floats().map(lambda v: Metric(MetricType.DOUBLE, v)))
        choices.append(st.floats(width=32).map(lambda v: Metric(MetricType.FLOAT, v)))
    return st.one_of(choices)


def bodies() -> st.SearchStrategy[bytes | None]:
    xml = st.sampled_from(
        (
            b"<packages><package><name>a</name><version>1</version></package></packages>",
            b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e 'x'>]><x>&e;</x>",
            b"<a><b>" * 50,
            b'{"status": "COMPLETED"}',
        )
    )
    return st.none() | st.binary(max_size=256) | xml


def positions() -> st.SearchStrategy[Position | None]:
    return st.none() | st.builds(
        Position,
        latitude=st.floats(),
        longitude=st.floats(),
        altitude=st.none() | st.floats(),
        satellites=st.none() | _INT32,
        timestamp=st.none() | _INT64,
    )


def kura_payloads(floats: bool = True) -> st.SearchStrategy[KuraPayload]:
    names = st.sampled_from(METRIC_NAMES) | st.text(min_size=1, max_size=20)
    return st.builds(
        KuraPayload,
        metrics=st.dictionaries(names, metrics(floats), max_size=8),
        body=bodies(),
        timestamp=st.none() | _INT64,
        position=positions() if floats else st.none(),
    )


def mutated(data: bytes) -> st.SearchStrategy[bytes]:
    """`data` as it is, truncated, with bytes flipped, or with bytes inserted."""
    size = len(data)
    cut = st.integers(0, max(0, size - 1)).map(lambda n: data[:n])
    flip = st.lists(st.tuples(st.integers(0, max(0, size - 1)), st.integers(0, 255)), max_size=4)
    inserted = st.tuples(st.integers(0, size), st.binary(min_size=1, max_size=16))
    return st.one_of(
        st.just(data),
        cut,
        flip.map(lambda changes: _flipped(data, changes)),
        inserted.map(lambda at: data[: at[0]] + at[1] + data[at[0] :]),
    )


def _flipped(data: bytes, changes: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for index, value in changes:
        if index < len(out):
            out[index] = value
    return bytes(out)
