"""Paho's network thread only hands messages over: the broker's queue for the runner never
fills while the runner reads, and replies are read before a flood of lifecycle messages.

The broker sends a QoS 1 subscriber only what it acknowledged plus its queue, and drops the
rest; paho acknowledges a message when its `on_message` returns. Every test here blocks the
reading of a message on an event it releases itself, so nothing depends on the machine's
speed: a runner that reads on paho's thread is stuck for as long as the test wants.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from jobrunner.device.correlation import PendingTable
from jobrunner.device.handover import Handover, Lane, Message, lane_of
from jobrunner.device.inbound import Inbound
from jobrunner.device.model import AnomalyKind, PayloadCodec, Pending, Tracked
from jobrunner.device.payload import KuraPayload, Metric, ProtobufCodec
from jobrunner.device.topics import LifecycleTopic
from jobrunner.simulator.broker import RunningBroker, find_mosquitto, start_broker
from tests.conftest import EXTERNAL
from tests.device.conftest import CODEC, WAIT, Recorder, Responder, make_client, unique

BLOCKING = b"\x00 decoding this waits for the test"
BIRTH = CODEC.encode(KuraPayload.of({"display_name": Metric.string("gw")}))


class BlockingCodec(ProtobufCodec):
    """Kura protobuf, except that decoding `BLOCKING` waits until released, then fails."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.released = threading.Event()
        self.threads: list[str] = []

    def decode(self, data: bytes) -> KuraPayload:
        if data == BLOCKING:
            self.threads.append(threading.current_thread().name)
            self.entered.set()
            self.released.wait(WAIT)
            raise ValueError("the test's unreadable payload")
        return super().decode(data)


class HeldRecorder(Recorder):
    """A recorder whose first lifecycle message is held until `released`: the runner is
    busy for as long as the test wants. `order` lists what was handled, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.released = threading.Event()
        self.order: list[str] = []

    def lifecycle(self, topic: LifecycleTopic, payload: KuraPayload) -> None:
        if not self.entered.is_set():
            self.entered.set()
            self.released.wait(WAIT)
        self.order.append(f"{topic.kind.value} {topic.device}")
        super().lifecycle(topic, payload)

    def reply(self, pending: Pending[str], payload: KuraPayload) -> None:
        self.order.append(f"REPLY {pending.request_id}")
        super().reply(pending, payload)


def received(topic: str, payload: bytes) -> mqtt.MQTTMessage:
    message = mqtt.MQTTMessage(mid=1, topic=topic.encode())
    message.payload = payload
    return message


def test_the_network_callback_only_queues_a_message_and_decodes_nothing(
    broker: RunningBroker, recorder: Recorder, account: str
) -> None:
    codec = BlockingCodec()
    client = make_client(broker, recorder)
    client.add_account(account, codec)
    client.start(timeout=WAIT)
    on_message = client._session.mqtt.on_message  # what paho's network thread calls
    assert on_message is not None
    returned = threading.Event()

    def network_thread() -> None:
        on_message(
            client._session.mqtt, None, received(f"$EDC/{account}/gw-1/MQTT/BIRTH", BLOCKING)
        )
        returned.set()

    paho = threading.Thread(target=network_thread, name="paho-network-thread", daemon=True)
    try:
        paho.start()
        assert returned.wait(WAIT), "paho's callback did not return: it decodes the message"
        assert codec.entered.wait(WAIT), "the message handed over was never read"
        assert codec.threads == ["mqtt-inbound"]  # read on the reader's thread, not paho's
    finally:
        codec.released.set()
        paho.join(WAIT)
    anomaly = recorder.anomaly_of(AnomalyKind.UNDECODABLE, "the test's unreadable payload")
    assert anomaly.device == (account, "gw-1")
    client.stop()


@pytest.fixture
def small_queue_broker() -> Iterator[RunningBroker]:
    """Mosquitto keeping at most 10 messages for a subscriber beyond the 20 in flight."""
    if EXTERNAL is not None or find_mosquitto() is None:
        pytest.skip("needs mosquitto, started by the test with max_queued_messages 10")
    with start_broker("mosquitto", max_queued_messages=10) as running:
        yield running


def test_a_burst_of_births_many_times_the_brokers_queue_is_all_read(
    small_queue_broker: RunningBroker, account: str
) -> None:
    recorder = HeldRecorder()
    client = make_client(small_queue_broker, recorder, account)
    client.start(timeout=WAIT)
    devices = [f"gw-{n}" for n in range(200)]  # twenty times the queue, 6.7 times queue+flight
    fleet = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("fleet"))
    fleet.max_inflight_messages_set(1)  # each BIRTH acknowledged by the broker before the next
    fleet.connect(small_queue_broker.host, small_queue_broker.port)
    fleet.loop_start()
    try:
        first = fleet.publish(f"$EDC/{account}/{devices[0]}/MQTT/BIRTH", BIRTH, qos=1)
        first.wait_for_publish(WAIT)
        assert recorder.entered.wait(WAIT), "the first BIRTH never reached the runner"
        # The runner is busy with the first BIRTH while the rest of the fleet connects, in
        # bursts of 25: more than the broker queues for the runner (10), within what it
        # holds with those in flight (30), so that nothing depends on how soon paho's thread
        # gets the CPU; each burst is taken off the socket, unread, before the next.
        rest = devices[1:]
        for start in range(0, len(rest), 25):
            for device in rest[start : start + 25]:
                info = fleet.publish(f"$EDC/{account}/{device}/MQTT/BIRTH", BIRTH, qos=1)
                info.wait_for_publish(WAIT)
                assert info.is_published(), f"the broker did not take the BIRTH of {device}"
            taken = min(start + 25, len(rest))
            deadline = time.monotonic() + WAIT
            while client.waiting < taken and time.monotonic() < deadline:
                time.sleep(0.01)
            assert client.waiting == taken, "paho's thread stopped taking messages"
    finally:
        recorder.released.set()
        fleet.disconnect()
        fleet.loop_stop()
    try:
        recorder.wait(
            lambda: len(recorder.lifecycles) == len(devices),
            f"all {len(devices)} BIRTHs (got {len(recorder.lifecycles)})",
        )
        assert sorted(topic.device for topic, _ in recorder.lifecycles) == sorted(devices)
        assert recorder.anomalies == []
    finally:
        client.stop()


def inbound(recorder: Recorder, table: PendingTable[str]) -> Inbound[str]:
    codecs: dict[str, PayloadCodec] = {"acme": ProtobufCodec()}
    tracked: dict[tuple[str, int], Tracked[str]] = {}
    return Inbound("runner", recorder, table, codecs, tracked)


def test_a_reply_is_read_before_a_flood_of_lifecycle_messages_already_waiting() -> None:
    recorder = HeldRecorder()
    table: PendingTable[str] = PendingTable(10)
    table.add(Pending(("acme", "gw-7"), "r-1", "CMD-V1", "ping", "tag"))
    handover = Handover(inbound(recorder, table).handle)
    handover.start()
    try:
        handover.put(received("$EDC/acme/gw-0/MQTT/BIRTH", BIRTH))
        assert recorder.entered.wait(WAIT)  # the reader is busy with gw-0
        for n in range(1, 51):
            handover.put(received(f"$EDC/acme/gw-{n}/MQTT/BIRTH", BIRTH))
        handover.put(received("$EDC/acme/runner/CMD-V1/REPLY/r-1", Responder.ok()))
        assert handover.waiting == 51
        recorder.released.set()
        recorder.wait(lambda: len(recorder.lifecycles) == 51, "the 51 BIRTHs")
    finally:
        recorder.released.set()
        handover.stop()
    assert recorder.order[:3] == ["BIRTH gw-0", "REPLY r-1", "BIRTH gw-1"]
    assert recorder.order[-1] == "BIRTH gw-50"  # the flood itself keeps its order


@pytest.mark.parametrize(
    ("topic", "lane"),
    [
        ("$EDC/acme/gw-1/MQTT/BIRTH", Lane.LIFECYCLE),
        ("$EDC/acme/gw-1/MQTT/LWT", Lane.LIFECYCLE),
        ("$EDC/acme/runner/CMD-V1/REPLY/7", Lane.REPLIES),
        ("$EDC/acme/runner/DEPLOY-V2/NOTIFY/gw-1/download", Lane.REPLIES),
        ("$EDC/acme/runner/MQTT/REPLY/7", Lane.REPLIES),  # an app named MQTT: still a reply
        ("junk", Lane.REPLIES),
    ],
)
def test_the_lane_of_a_message_is_told_by_its_topic(topic: str, lane: Lane) -> None:
    assert lane_of(received(topic, b"")) is lane


def test_a_topic_that_is_not_utf8_goes_to_the_replies_lane() -> None:
    message = mqtt.MQTTMessage(mid=1, topic=b"$EDC/acme/\xff/MQTT/BIRTH")
    assert lane_of(message) is Lane.REPLIES


class Blocked:
    """A handler that holds the first message until released, then counts the others."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.handled = threading.Condition()
        self.topics: list[str] = []

    def __call__(self, message: Message) -> None:
        if not self.entered.is_set():
            self.entered.set()
            self.released.wait(WAIT)
        with self.handled:
            self.topics.append(message.topic)
            self.handled.notify_all()

    def wait_for(self, count: int) -> None:
        with self.handled:
            assert self.handled.wait_for(lambda: len(self.topics) >= count, WAIT), self.topics


def test_over_the_mark_messages_are_dropped_counted_and_said_once_per_overflow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="jobrunner.device.handover")
    handler = Blocked()
    dropped: list[Lane] = []
    handover = Handover(handler, max_waiting=3, on_dropped=dropped.append)
    handover.start()
    try:
        handover.put(received("$EDC/acme/gw-0/MQTT/BIRTH", BIRTH))
        assert handler.entered.wait(WAIT)
        for n in range(1, 6):  # three wait, two are dropped
            handover.put(received(f"$EDC/acme/gw-{n}/MQTT/BIRTH", BIRTH))
        handover.put(received("$EDC/acme/runner/CMD-V1/REPLY/9", b""))  # dropped too
        assert handover.waiting == 3
        assert dropped == [Lane.LIFECYCLE, Lane.LIFECYCLE, Lane.REPLIES]
        [warning] = [r for r in caplog.records if "slower than the broker" in r.getMessage()]
        assert "3 messages" in warning.getMessage()
        assert "jobrunner_inbound_dropped_total" in warning.getMessage()
        handler.released.set()
        handler.wait_for(4)
        assert handler.topics == [f"$EDC/acme/gw-{n}/MQTT/BIRTH" for n in range(4)]
        [caught_up] = [r for r in caplog.records if "caught up" in r.getMessage()]
        assert "1 replies or notifications and 2 lifecycle messages" in caught_up.getMessage()
        # Once caught up, the next overflow is said again.
        handler.entered.clear()
        handler.released.clear()
        handover.put(received("$EDC/acme/gw-10/MQTT/BIRTH", BIRTH))
        assert handler.entered.wait(WAIT)
        for n in range(11, 15):
            handover.put(received(f"$EDC/acme/gw-{n}/MQTT/BIRTH", BIRTH))
        assert dropped[3:] == [Lane.LIFECYCLE]
    finally:
        handler.released.set()
        handover.stop()
    warnings = [r for r in caplog.records if "slower than the broker" in r.getMessage()]
    assert len(warnings) == 2


def test_payload_bytes_are_bounded_too() -> None:
    handler = Blocked()
    dropped: list[Lane] = []
    handover = Handover(handler, max_waiting_bytes=100, on_dropped=dropped.append)
    handover.start()
    try:
        handover.put(received("$EDC/acme/gw-0/MQTT/BIRTH", b"x"))
        assert handler.entered.wait(WAIT)
        handover.put(received("$EDC/acme/gw-1/MQTT/BIRTH", b"x" * 60))
        handover.put(received("$EDC/acme/gw-2/MQTT/BIRTH", b"x" * 60))  # over 100 bytes
        handover.put(received("$EDC/acme/gw-3/MQTT/BIRTH", b"x" * 40))  # fits
        assert dropped == [Lane.LIFECYCLE]
        assert handover.waiting == 2
    finally:
        handler.released.set()
        handover.stop()


def test_the_network_thread_never_waits_on_a_full_hand_over() -> None:
    """Dropping is the answer to a full hand-over: `put` returns while the reader is stuck."""
    handler = Blocked()
    handover = Handover(handler, max_waiting=1)
    handover.start()
    try:
        handover.put(received("$EDC/acme/gw-0/MQTT/BIRTH", BIRTH))
        assert handler.entered.wait(WAIT)
        for n in range(1, 1000):
            handover.put(received(f"$EDC/acme/gw-{n}/MQTT/BIRTH", BIRTH))
        assert handover.waiting == 1
    finally:
        handler.released.set()
        handover.stop()


def test_a_stopped_hand_over_forgets_what_waits_and_reads_again_once_started() -> None:
    handler = Blocked()
    handler.entered.set()  # nothing held
    handover = Handover(handler)
    handover.start()
    handover.put(received("$EDC/acme/gw-0/MQTT/BIRTH", BIRTH))
    handler.wait_for(1)
    handover.stop()
    handover.put(received("$EDC/acme/gw-1/MQTT/BIRTH", BIRTH))  # paho's last, as it stops
    handover.stop()
    assert handover.waiting == 0
    handover.start()
    try:
        handover.put(received("$EDC/acme/gw-2/MQTT/BIRTH", BIRTH))
        handler.wait_for(2)
    finally:
        handover.stop()
    assert handler.topics == ["$EDC/acme/gw-0/MQTT/BIRTH", "$EDC/acme/gw-2/MQTT/BIRTH"]
