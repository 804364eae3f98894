"""What the broker sends is read as paho 2.2 reads it: the same messages, in the same order,
the same acknowledgements written back, whichever way the bytes are cut; only cheaper (many
packets to a `recv`, no MQTTMessage for a QoS 0 or 1 PUBLISH). The runner's client and a
plain paho client read the same bytes from a socket pair; then, on a real broker, a QoS 1
message is acknowledged (the broker does not send it again after a reconnection)."""

from __future__ import annotations

import select
import socket
import struct
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from jobrunner.device.connection import Session
from jobrunner.device.handover import Message
from jobrunner.device.pahoclient import READ_SIZE, Received
from jobrunner.device.settings import BrokerSettings
from jobrunner.simulator.broker import RunningBroker
from tests.device.conftest import WAIT, Recorder, make_client, unique


def _length(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def publish(topic: bytes, payload: bytes, qos: int = 0, mid: int = 0, flags: int = 0) -> bytes:
    """A PUBLISH packet as a broker writes it (MQTT 3.1.1)."""
    body = struct.pack("!H", len(topic)) + topic + (struct.pack("!H", mid) if qos else b"")
    body += payload
    return bytes((0x30 | qos << 1 | flags,)) + _length(len(body)) + body


PINGRESP = b"\xd0\x00"
SUBACK = b"\x90\x03\x00\x05\x01"
REPLY = b"$EDC/acme/runner/CMD-V1/REPLY/"
STREAM = b"".join(
    [
        publish(REPLY + b"1", b"\x08\x01" * 20),
        # a remaining length of three bytes
        publish(b"$EDC/acme/gw-1/MQTT/BIRTH", bytes(range(256)) * 80, qos=1, mid=7),
        PINGRESP,
        publish(REPLY + b"2", b"", flags=0x01),  # retained, empty payload
        publish(b"$EDC/acme/gw-\xff/MQTT/DC", b"x", qos=1, mid=8),  # a topic that is not UTF-8
        SUBACK,
        publish(b"$EDC/acme/gw-2/MQTT/BIRTH", b"qos 2", qos=2, mid=9),  # paho's own path
        *(publish(REPLY + str(n).encode(), b"\x10" * n) for n in range(3, 300)),
        publish(b"$EDC/acme/gw-3/MQTT/APPS", b"y", qos=1, mid=65535, flags=0x08),  # a duplicate
    ]
)


class _Reader:
    """A client fed by a socket pair: what it delivers, what it writes back."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.ours, self.broker = socket.socketpair()
        self.ours.setblocking(False)
        self.broker.setblocking(False)
        client._sock = self.ours
        client._sockpairR = client._sockpairW = None  # no wake-ups to read back
        client.on_subscribe = lambda *_: None
        self.delivered: list[tuple[bytes, bytes]] = []
        self.written = bytearray()

    def take(self, message: Message) -> None:
        try:
            topic = message.topic.encode()
        except UnicodeDecodeError:
            topic = message._topic  # type: ignore[attr-defined]  # paho's and ours
        self.delivered.append((topic, bytes(message.payload)))

    def feed(self, data: bytes) -> list[int]:
        """Send `data` as the broker would, then run paho's loop over it as long as the
        socket says there is something to read; the return codes of `loop_read`."""
        self.broker.sendall(data)
        codes = []
        while select.select([self.ours], [], [], 0)[0]:
            codes.append(int(self.client.loop_read()))
            if self.client._sock is None:
                break
            # Nothing read is left in a buffer that select does not see.
            client = self.client
            assert getattr(client, "_in_buffer", b"")[getattr(client, "_in_at", 0) :] == b""
        while True:
            try:
                written = self.broker.recv(65536)
            except BlockingIOError:
                break
            if not written:  # the client closed the connection
                break
            self.written += written
        return codes

    def close(self) -> None:
        self.ours.close()
        self.broker.close()


@pytest.fixture
def readers() -> Iterator[tuple[_Reader, _Reader]]:
    settings = BrokerSettings.from_url("mqtt://127.0.0.1:1", client_id="runner")
    session = Session(settings, {}, lambda _message: None, lambda *_: None)
    ours = _Reader(session.mqtt)
    session.mqtt.deliver = ours.take
    session.mqtt.on_message = lambda _c, _u, message: ours.take(message)
    pahos = _Reader(
        mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="runner", protocol=MQTTProtocolVersion.MQTTv311
        )
    )
    pahos.client.on_message = lambda _c, _u, message: pahos.take(message)
    yield ours, pahos
    ours.close()
    pahos.close()


@pytest.mark.parametrize("cut", [len(STREAM), READ_SIZE + 1, 1000, 7, 1])
def test_what_the_broker_sends_is_read_as_paho_reads_it(
    readers: tuple[_Reader, _Reader], cut: int
) -> None:
    ours, pahos = readers
    for at in range(0, len(STREAM), cut):
        ours.feed(STREAM[at : at + cut])
        pahos.feed(STREAM[at : at + cut])
    assert len(pahos.delivered) == 302  # every PUBLISH but the QoS 2 one (awaits its PUBREL)
    assert ours.delivered == pahos.delivered
    assert ours.written == pahos.written  # PUBACK 7, 8 and 65535, PUBREC 9
    assert ours.written.count(b"\x40\x02") == 3


def test_a_qos_0_or_1_publish_is_delivered_without_pahos_message(
    readers: tuple[_Reader, _Reader],
) -> None:
    ours, _ = readers
    received: list[Message] = []
    ours.client.deliver = received.append
    ours.feed(publish(REPLY + b"1", b"a") + publish(REPLY + b"2", b"b", qos=1, mid=1))
    assert [type(m) for m in received] == [Received, Received]


@pytest.mark.parametrize(
    "data",
    [
        publish(b"", b"no topic"),  # paho: a protocol error (an empty topic in MQTT 3.1.1)
        b"\x30\x01\x00",  # shorter than its topic's length
        b"\x30\xff\xff\xff\xff\x7f",  # a remaining length of five bytes
        b"\xf0\x00",  # no such packet type
    ],
)
def test_a_malformed_packet_ends_the_connection_as_paho_does(
    readers: tuple[_Reader, _Reader], data: bytes
) -> None:
    ours, pahos = readers
    try:
        expected: list[int] | type[BaseException] = pahos.feed(data)
    except Exception as error:  # paho lets struct.error out of its loop
        expected = type(error)
    if isinstance(expected, list):
        assert ours.feed(data) == expected
    else:
        with pytest.raises(expected):
            ours.feed(data)
    assert ours.delivered == pahos.delivered == []
    assert (ours.client._sock is None) is (pahos.client._sock is None)


def test_a_connection_closed_by_the_broker_is_lost_as_paho_says(
    readers: tuple[_Reader, _Reader],
) -> None:
    ours, pahos = readers
    for reader in readers:
        reader.broker.sendall(publish(REPLY + b"1", b"a") + publish(REPLY + b"2", b"b")[:3])
        reader.broker.close()
    codes = [int(reader.client.loop_read()) for reader in readers]
    while pahos.client._sock is not None:  # paho reads one packet a call
        codes[1] = int(pahos.client.loop_read())
    assert codes[0] == codes[1] != 0
    assert ours.delivered == pahos.delivered == [(REPLY + b"1", b"a")]
    assert ours.client._sock is None
    assert ours.client._in_buffer == b""  # nothing read on this connection is kept for the next


def test_a_qos_1_message_is_acknowledged_to_the_broker(
    broker: RunningBroker, recorder: Recorder
) -> None:
    """Had the runner not acknowledged the first BIRTH, the broker would send it again when the
    runner's session comes back, before the BIRTH queued meanwhile."""
    account = unique("acct")
    client = make_client(broker, recorder, account)
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("gw"))
    device.connect(broker.host, broker.port)
    device.loop_start()
    try:
        client.start(WAIT)
        device.publish(f"$EDC/{account}/gw-1/MQTT/BIRTH", b"", qos=1).wait_for_publish(WAIT)
        recorder.wait(lambda: len(recorder.lifecycles) == 1, "the first BIRTH")
        client.stop()
        device.publish(f"$EDC/{account}/gw-2/MQTT/BIRTH", b"", qos=1).wait_for_publish(WAIT)
        client.start(WAIT)
        recorder.wait(
            lambda: any(t.device == "gw-2" for t, _ in recorder.lifecycles), "the second BIRTH"
        )
        assert [t.device for t, _ in recorder.lifecycles] == ["gw-1", "gw-2"]
    finally:
        device.disconnect()
        device.loop_stop()
        client.stop()
