"""A request is published as paho's own `publish(topic, payload, 0, False)` would: the same
packet, queued the same way, and the same errors; without a broker (the packets are read
from paho's queue)."""

from __future__ import annotations

import socket
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from jobrunner.device.connection import Session
from jobrunner.device.settings import BrokerSettings


class _Socket:
    """Enough of a socket for paho to queue packets for it (nothing is written)."""

    def close(self) -> None:
        pass


def _paho() -> Any:
    settings = BrokerSettings.from_url("mqtt://127.0.0.1:1", client_id="runner")
    client = Session(settings, {}, lambda *_: None, lambda *_: None).mqtt
    client._sock = _Socket()  # type: ignore[assignment]  # "connected": paho queues what is published
    return client


def _queued(client: Any) -> list[tuple[int, int, bytes]]:
    return [(p["command"], p["qos"], bytes(p["packet"])) for p in client._out_packet]


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("$EDC/acme/gw-1/CMD-V1/EXEC/command", b"\x08\x01" * 10),
        ("$EDC/acme/gérard/DEPLOY-V2/EXEC/download", b""),
        ("$EDC/acme/gw-1/CMD-V1/EXEC/command", bytes(range(256)) * 600),  # a longer length
    ],
)
def test_a_request_is_the_packet_pahos_publish_makes(topic: str, payload: bytes) -> None:
    ours, pahos = _paho(), _paho()
    assert ours.publish_at_most_once(topic, payload) == pahos.publish(topic, payload, 0, False).rc
    assert _queued(ours) == _queued(pahos)
    [packet] = ours._out_packet
    packet["info"]._set_as_published()  # as paho's network thread does once it is written
    assert packet["info"].is_published()


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("$EDC/acme/gw+1/CMD-V1/EXEC/command", b""),
        ("$EDC/acme/#/CMD-V1/EXEC/command", b""),
        ("$EDC/" + "x" * 65_535, b""),
    ],
)
def test_what_paho_refuses_is_refused_alike(topic: str, payload: bytes) -> None:
    with pytest.raises(ValueError) as pahos:
        _paho().publish(topic, payload, 0, False)
    with pytest.raises(ValueError) as ours:
        _paho().publish_at_most_once(topic, payload)
    assert str(ours.value) == str(pahos.value)


def test_without_a_connection_nothing_is_queued() -> None:
    ours, pahos = _paho(), _paho()
    ours._sock = pahos._sock = None
    assert ours.publish_at_most_once("a/b", b"x") == pahos.publish("a/b", b"x", 0, False).rc
    assert _queued(ours) == _queued(pahos) == []


def _writing(client: Any) -> tuple[socket.socket, list[int]]:
    """`client` connected to a socket pair whose other end is returned; each `send` of the
    client is counted (its size) in the list."""
    mine, other = socket.socketpair()
    mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16_384)  # so that some writes are cut
    mine.setblocking(False)
    client._sock = mine
    client._sockpairR = client._sockpairW = None
    client._thread = object()  # as with paho's network thread: a publication only queues
    sends: list[int] = []
    send = client._sock_send

    def counted(data: bytes) -> int:
        written: int = send(data)
        sends.append(written)
        return written

    client._sock_send = counted
    return other, sends


def _drain(client: Any, other: socket.socket) -> bytes:
    """Run paho's writing until nothing waits, reading what it wrote as a broker would."""
    received = bytearray()
    while client._out_packet:
        client.loop_write()
        received += other.recv(1 << 20)
    return bytes(received)


def test_a_turns_requests_are_written_by_one_send_as_paho_writes_them() -> None:
    ours = _paho()
    pahos: Any = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv311)
    (our_end, our_sends), (pahos_end, pahos_sends) = _writing(ours), _writing(pahos)
    infos = []
    for n in range(300):  # about 300 kB: more than the socket takes at once
        topic, payload = f"$EDC/acme/gw-{n}/CMD-V1/EXEC/command", bytes([n % 256]) * (n * 7)
        ours.publish_at_most_once(topic, payload)
        infos.append(ours._out_packet[-1]["info"])
        pahos.publish(topic, payload, 0, False)
        if n == 150:  # a packet that is not a QoS 0 PUBLISH, in the middle
            ours.subscribe("$EDC/acme/+/MQTT/BIRTH", 1)
            pahos.subscribe("$EDC/acme/+/MQTT/BIRTH", 1)
    assert _drain(ours, our_end) == _drain(pahos, pahos_end)
    assert all(info.is_published() for info in infos)
    assert len(our_sends) < len(pahos_sends) / 10  # paho: one send a packet
    assert len(pahos_sends) >= 301
    our_end.close()
    pahos_end.close()
    ours._sock.close()
    pahos._sock.close()
