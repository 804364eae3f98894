"""A request is published as paho's own `publish(topic, payload, 0, False)` would: the same
packet, queued the same way, and the same errors; without a broker (the packets are read
from paho's queue)."""

from __future__ import annotations

from typing import Any

import pytest

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
