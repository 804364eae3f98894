"""Fuzzing what the client does with received messages, through paho's own callback
(`Inbound.handle`), and what the 13 step operations make of any reply or notification.

Whatever arrives, on whatever topic: no exception escapes (not even into the handler's
catch-all), nothing is taken for a request or an operation it does not belong to, memory
stays bounded, and the valid request and operation still awaited are answered afterwards.
"""

from __future__ import annotations

import gzip
import logging
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as mqtt
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from jobrunner.device.correlation import PendingTable
from jobrunner.device.inbound import Inbound
from jobrunner.device.jsoncodec import JsonCodec
from jobrunner.device.model import PayloadCodec, Pending, Tracked
from jobrunner.device.operations import (
    AsyncState,
    Operation,
    Outcome,
    operation_for_step,
)
from jobrunner.device.payload import MAX_DECOMPRESSED_BYTES, KuraPayload, Metric, ProtobufCodec
from jobrunner.manifests import Step
from tests.device.conftest import Recorder
from tests.device.fuzzing import FUZZ, kura_payloads, mutated

PROTOBUF = ProtobufCodec()
KEPT = "keep-8c1f2e"  # a request id the fuzzed topics never name: it must survive them all
SEGMENTS = (
    "$EDC", "acme", "json-acct", "other", "runner", "other-runner", "CMD-V1", "DEPLOY-V2",
    "REPLY", "NOTIFY", "MQTT", "BIRTH", "DC", "LWT", "APPS", "gw-1", "gw-2", "req-1",
    "download", "install", "", "+", "#",
)  # fmt: skip
MEMORY_LIMIT = 48 * 1024 * 1024


class World:
    """An Inbound as the client builds it, with one request and one operation awaited."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.table: PendingTable[str] = PendingTable(16)
        codecs: dict[str, PayloadCodec] = {"acme": PROTOBUF, "json-acct": JsonCodec()}
        self.tracked = {
            ("acme", 77): Tracked(("acme", "gw-1"), 77, "DEPLOY-V2", "download"),
            ("json-acct", 78): Tracked(("json-acct", "gw-2"), 78, "DEPLOY-V2", "json-download"),
        }
        self.inbound = Inbound("runner", self.recorder, self.table, codecs, self.tracked)
        for request_id, device in ((KEPT, "gw-1"), ("req-1", "gw-1"), ("req-2", "gw-2")):
            self.table.add(Pending(("acme", device), request_id, "CMD-V1", "command", "t"))

    def receive(self, topic: bytes, payload: bytes) -> None:
        """Deliver as paho does; a reply taken must have come on its request's account and
        app, addressed to this runner."""
        message = mqtt.MQTTMessage(topic=topic)
        message.payload = payload
        before = len(self.recorder.replies)
        self.inbound.handle(message)
        for pending, _ in self.recorder.replies[before:]:
            parts = topic.decode().split("/")
            assert (parts[1], parts[2], parts[3]) == (pending.device[0], "runner", pending.app_id)
            assert parts[5] == pending.request_id

    def still_served(self) -> None:
        """The request and the operation that no fuzzed message could name are answered."""
        ok = PROTOBUF.encode(KuraPayload.of({"response.code": Metric.int32(200)}))
        self.receive(f"$EDC/acme/runner/CMD-V1/REPLY/{KEPT}".encode(), ok)
        assert [p.request_id for p, _ in self.recorder.replies][-1] == KEPT
        notified = KuraPayload.of(
            {"job.id": Metric.int64(77), "dp.download.status": Metric.string("COMPLETED")}
        )
        before = len(self.recorder.notifications)
        self.receive(b"$EDC/acme/runner/DEPLOY-V2/NOTIFY/gw-1/download", PROTOBUF.encode(notified))
        assert len(self.recorder.notifications) == before + 1


@contextmanager
def no_handler_errors() -> Iterator[list[logging.LogRecord]]:
    """Fail if Inbound's catch-all had to catch anything: that would be a bug in a handler."""
    caught: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record)

    logger = logging.getLogger("jobrunner.device.inbound")
    handler = Keep(logging.ERROR)
    logger.addHandler(handler)
    try:
        yield caught
    finally:
        logger.removeHandler(handler)
    assert caught == [], [r.getMessage() for r in caught]


garbage_topics = st.one_of(
    st.lists(st.sampled_from(SEGMENTS) | st.text(max_size=8), max_size=9).map(
        lambda parts: "/".join(parts).encode()
    ),
    st.binary(max_size=40),
)
garbage_payloads = st.one_of(
    st.binary(max_size=512),
    kura_payloads().flatmap(lambda p: mutated(PROTOBUF.encode(p))),
    kura_payloads().flatmap(lambda p: mutated(JsonCodec().encode(p))),
    kura_payloads().map(lambda p: gzip.compress(PROTOBUF.encode(p))),
)
WRONGS = ("account", "requester", "app", "device", "job", "sender", "request", "bytes")


@st.composite
def near_misses(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A reply or notification the runner awaits, with up to two things wrong about it."""
    account, device, operation = draw(
        st.sampled_from((("acme", "gw-1", 77), ("json-acct", "gw-2", 78)))
    )
    wrong = draw(st.sets(st.sampled_from(WRONGS), max_size=2))
    codec = JsonCodec() if account == "json-acct" else PROTOBUF
    if "account" in wrong:
        account = draw(st.sampled_from(("acme", "json-acct", "other")))
    requester = draw(st.sampled_from(SEGMENTS)) if "requester" in wrong else "runner"
    extra = draw(kura_payloads())
    metrics = {**extra.metrics, "response.code": Metric.int32(draw(st.sampled_from((200, 500))))}
    metrics["job.id"] = Metric.int64(
        draw(st.sampled_from((77, 78, 79))) if "job" in wrong else operation
    )
    if "sender" in wrong:
        metrics["client.id"] = Metric.string(draw(st.sampled_from(("gw-1", "gw-2", "gw-3"))))
    if draw(st.booleans()):  # a reply
        app = "DEPLOY-V2" if "app" in wrong else "CMD-V1"
        request = (
            draw(st.sampled_from(("req-1", "req-2", "req-9"))) if "request" in wrong else "req-1"
        )
        topic = f"$EDC/{account}/{requester}/{app}/REPLY/{request}"
    else:
        app = "CMD-V1" if "app" in wrong else "DEPLOY-V2"
        if "device" in wrong:
            device = draw(st.sampled_from(("gw-1", "gw-2", "gw-3")))
        resource = draw(st.sampled_from(("download", "install")))
        topic = f"$EDC/{account}/{requester}/{app}/NOTIFY/{device}/{resource}"
    data = codec.encode(KuraPayload(metrics=metrics, body=extra.body))
    if "bytes" in wrong:
        data = draw(mutated(data))
    return topic.encode(), data


lifecycles = st.tuples(
    st.sampled_from(("acme", "json-acct", "other")),
    st.sampled_from(("gw-1", "gw-2")),
    st.sampled_from(("BIRTH", "DC", "LWT", "APPS", "HELLO")),
).map(lambda t: f"$EDC/{t[0]}/{t[1]}/MQTT/{t[2]}".encode())
messages = st.one_of(
    near_misses(),
    st.tuples(lifecycles, garbage_payloads),
    st.tuples(garbage_topics, garbage_payloads),
)


@FUZZ
@given(st.lists(messages, min_size=1, max_size=6))
def test_any_message_on_any_topic_is_handled_and_the_awaited_are_still_answered(
    received: list[tuple[bytes, bytes]],
) -> None:
    world = World()
    with no_handler_errors():
        for raw_topic, payload in received:
            world.receive(raw_topic, payload)
        for pending, _ in world.recorder.replies:
            assert pending.request_id in ("req-1", "req-2")
        for tracked, topic, _ in world.recorder.notifications:
            # Taken only from the device the operation went to, on its account, for us.
            assert (topic.account, topic.device) == tracked.device
            assert topic.requester == "runner" and topic.app_id == tracked.app_id
        world.still_served()


@FUZZ
@given(
    st.sampled_from(("acme", "json-acct", "other")),
    st.sampled_from(("gw-1", "gw-2", "gw-3")),
    st.sampled_from((77, 78, 79)),
    st.sampled_from(("runner", "other-runner")),
)
def test_a_notification_is_taken_only_from_the_device_it_was_asked_of(
    account: str, device: str, operation: int, requester: str
) -> None:
    world = World()
    codec = JsonCodec() if account == "json-acct" else PROTOBUF
    payload = KuraPayload.of(
        {"job.id": Metric.int64(operation), "client.id": Metric.string(device)}
    )
    topic = f"$EDC/{account}/{requester}/DEPLOY-V2/NOTIFY/{device}/download"

    with no_handler_errors():
        world.receive(topic.encode(), codec.encode(payload))

    tracked = world.tracked.get((account, operation))
    expected = tracked is not None and tracked.device == (account, device) and requester == "runner"
    assert len(world.recorder.notifications) == int(expected)
    assert len(world.recorder.anomalies) == int(not expected)


def test_a_reply_for_another_requester_is_not_taken_even_with_a_pending_id() -> None:
    world = World()
    ok = PROTOBUF.encode(KuraPayload.of({"response.code": Metric.int32(200)}))

    world.receive(f"$EDC/acme/other-runner/CMD-V1/REPLY/{KEPT}".encode(), ok)
    world.receive(f"XYZ/acme/runner/CMD-V1/REPLY/{KEPT}".encode(), ok)

    assert world.recorder.replies == []
    assert "addressed to requester other-runner, not to this runner" in str(
        world.recorder.anomalies[0]
    )
    world.still_served()


def test_bombs_and_oversized_bodies_cost_bounded_memory_and_disturb_nothing() -> None:
    bomb = gzip.compress(b"\0" * (4 * MAX_DECOMPRESSED_BYTES), compresslevel=9)
    huge = b"\x0a" + b"x" * (MAX_DECOMPRESSED_BYTES + 1)
    world = World()

    tracemalloc.start()
    try:
        for data in (bomb, huge):
            world.receive(f"$EDC/acme/runner/CMD-V1/REPLY/{KEPT}".encode(), data)
            world.receive(b"$EDC/acme/runner/DEPLOY-V2/NOTIFY/gw-1/download", data)
            world.receive(b"$EDC/acme/gw-1/MQTT/BIRTH", data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < MEMORY_LIMIT, f"peak {peak / 1_048_576:.1f} MB"
    refused = [a.message for a in world.recorder.anomalies]
    assert len(refused) == 6 and all("refused" in text for text in refused), refused
    world.still_served()


# --- the 13 operations ------------------------------------------------------------------------

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
_STEP = TypeAdapter(Step)
PROPERTIES: dict[str, list[dict[str, Any]]] = {
    "Activity Submit": [{"activityUri": "https://repo.example/a.yml"}],
    "Asset Write": [
        {"assets": [{"name": "a", "channels": [{"name": "c", "type": "STRING", "value": "v"}]}]}
    ],
    "Bundle Start": [{"bundleId": 1}],
    "Bundle Stop": [{"bundleId": 1}],
    "Command Execution": [{"command": "ls"}, {"command": "ls", "runAsync": True}],
    "Configuration Put": [{"configurations": [{"pid": "p", "properties": {"a": 1}}]}],
    "Device Certificate Management Install": [{"certificate": PEM}],
    "Device Certificate Management Revoke": [{"alias": "a"}],
    "Keystore Certificate Create": [{"keystoreId": "k", "alias": "a", "certificate": PEM}],
    "Keystore Item Delete": [{"keystoreId": "k", "alias": "a"}],
    "Keystore Keypair Create": [
        {
            "keystoreId": "k",
            "alias": "a",
            "algorithm": "RSA",
            "size": 2048,
            "signatureAlgorithm": "SHA256withRSA",
            "attributes": "CN=x",
        }
    ],
    "Package Download / Install": [
        {"uri": "https://repo.example/a.dp", "name": "a", "version": "1"},
        {"uri": "https://repo.example/a.dp", "name": "a", "version": "1", "install": False},
    ],
    "Package Uninstall": [{"name": "a"}, {"name": "a", "version": "1"}],
}
OPERATIONS: list[Operation[Any]] = [
    operation_for_step(_STEP.validate_python({"name": "s", "definition": d, "properties": p}))
    for d, variants in PROPERTIES.items()
    for p in variants
]
PHASES = ("download", "install", "uninstall", "activity", "", "restarted")


def test_the_fuzzed_operations_cover_the_whole_catalogue() -> None:
    assert {op.definition for op in OPERATIONS} == set(PROPERTIES) and len(PROPERTIES) == 13


@FUZZ
@given(
    st.sampled_from(OPERATIONS),
    kura_payloads(),
    st.sampled_from(PHASES),
    st.lists(st.sampled_from(("download", "install", "uninstall", "activity", "x")), max_size=2),
    st.sampled_from((77, 0, 2**63 - 1)),
)
def test_any_reply_or_notification_gives_an_outcome_and_never_raises(
    operation: Operation[Any],
    payload: KuraPayload,
    phase: str,
    resources: list[str],
    operation_id: int,
) -> None:
    state = AsyncState(operation_id, phase)
    assert isinstance(operation.reply(payload, operation_id), Outcome)
    assert isinstance(operation.notification(state, tuple(resources), payload), Outcome)
    queries = operation.status_queries(state)
    for query in queries:
        found = operation.status(state, query.name, payload)
        assert found is None or isinstance(found, Outcome)
    answers: dict[str, KuraPayload | None] = {
        q.name: (payload if i % 2 == 0 else None) for i, q in enumerate(queries)
    }
    found = operation.recover(state, answers)
    assert found is None or isinstance(found, Outcome)
