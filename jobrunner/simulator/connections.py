"""The MQTT connections of a simulated fleet (paho-mqtt 2.x), in two modes.

per-device  Each device is one MQTT client with its own client id and its own will
            (`$EDC/{account}/{device}/MQTT/LWT`, empty payload, QoS 0): the broker sees a
            real gateway, and publishes the LWT itself when the device drops. Meant for
            fleets up to a few hundred (each device is a TCP connection to the broker).
shared      A handful of clients (`FleetConfig.connections`), each subscribed to the control
            topics of its share of the devices (`$EDC/{account}/{device}/#`). The broker
            sees few connections; the fleet publishes a device's BIRTH, DC and LWT on its
            behalf. If a shared connection itself drops, its devices are simply offline
            until it is back (the broker has no per-device will to publish).

Every client subscribes at QoS 1, as Kura does, and waits for the SUBACK before the
device's BIRTH (so that a request sent in answer to the BIRTH finds the subscription).
All clients are driven by one `reactor.Reactor` thread; messages are handled inside
paho's callback on that thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from jobrunner.device.settings import BrokerSettings
from jobrunner.simulator.device import SimDevice
from jobrunner.simulator.reactor import Reactor

log = logging.getLogger(__name__)

_SUBSCRIBE_BATCH = 500
"""Topic filters per SUBSCRIBE packet of a shared connection."""


def _bytes(data: bytes | bytearray) -> bytes:
    return data if isinstance(data, bytes) else bytes(data)


def new_client(client_id: str, address: BrokerSettings, keepalive: int) -> mqtt.Client:
    """A paho client set up the way every fleet connection is (not connected yet): the
    broker's credentials and TLS files are the runner's (`BrokerSettings`)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        protocol=MQTTProtocolVersion.MQTTv311,
    )
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set(
            ca_certs=str(address.ca_file) if address.ca_file else None,
            certfile=str(address.cert_file) if address.cert_file else None,
            keyfile=str(address.key_file) if address.key_file else None,
        )
    client.max_inflight_messages_set(100)
    client.connect_async(address.host, address.port, keepalive)
    return client


class DeviceConnection:
    """One device's own MQTT connection (per-device mode)."""

    def __init__(
        self,
        device: SimDevice,
        address: BrokerSettings,
        account: str,
        qos: int,
        keepalive: int,
        reactor: Reactor,
        on_up: Callable[[SimDevice], None],
        on_down: Callable[[SimDevice], None],
    ) -> None:
        self.device = device
        self.reactor = reactor
        self._filter = f"$EDC/{account}/{device.client_id}/#"
        self._qos = qos
        self._on_up, self._on_down = on_up, on_down
        self._subscription: int | None = None
        self.started = False
        self.client = new_client(device.client_id, address, keepalive)
        self.client.will_set(f"$EDC/{account}/{device.client_id}/MQTT/LWT", b"", 0, False)
        self.client.on_connect = self._connected
        self.client.on_subscribe = self._subscribed
        self.client.on_message = self._message
        self.client.on_disconnect = self._disconnected
        reactor.attach(self.client)

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Publish through this connection (thread-safe; written by the reactor)."""
        self.client.publish(topic, payload, qos)

    def start(self, delay: float = 0.0) -> None:
        """Connect (again); the device's BIRTH follows the SUBACK."""
        self.started = True
        self.reactor.connect(self.client, delay)

    def drop(self) -> None:
        """Lose the connection without a DISCONNECT, so that the broker publishes the will."""
        self.reactor.drop(self.client)

    def close(self) -> None:
        """Disconnect cleanly (no will); the caller has published the DC."""
        self.reactor.close(self.client)

    def _connected(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.warning(
                "device %s: broker refused the connection: %s", self.device.client_id, reason
            )
            return
        self._subscription = client.subscribe(self._filter, self._qos)[1]

    def _subscribed(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        if mid != self._subscription:
            return
        if any(r.is_failure for r in reasons):
            log.error("device %s: subscription to %s refused", self.device.client_id, self._filter)
            return
        self._on_up(self.device)

    def _message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.reactor.handled += 1
        try:
            self.device.on_message(message.topic.split("/"), _bytes(message.payload))
        except Exception:
            log.exception("device %s: message on %r failed", self.device.client_id, message.topic)

    def _disconnected(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self._on_down(self.device)


class SharedConnection:
    """One MQTT connection serving many devices (shared mode)."""

    def __init__(
        self,
        client_id: str,
        devices: Iterable[SimDevice],
        address: BrokerSettings,
        account: str,
        qos: int,
        keepalive: int,
        reactor: Reactor,
        on_up: Callable[[SharedConnection], None],
        on_down: Callable[[SharedConnection], None],
    ) -> None:
        self.client_id = client_id
        self.reactor = reactor
        self.devices: dict[str, SimDevice] = {d.client_id: d for d in devices}
        self._filters = [(f"$EDC/{account}/{cid}/#", qos) for cid in self.devices]
        self._on_up, self._on_down = on_up, on_down
        self._pending: set[int] = set()
        self.ready = False
        self.client = new_client(client_id, address, keepalive)
        self.client.on_connect = self._connected
        self.client.on_subscribe = self._subscribed
        self.client.on_message = self._message
        self.client.on_disconnect = self._disconnected
        reactor.attach(self.client)
        for device in self.devices.values():
            device.link = self

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Publish through this connection (thread-safe; written by the reactor)."""
        self.client.publish(topic, payload, qos)

    def start(self, delay: float = 0.0) -> None:
        """Connect (again), `delay` seconds from now."""
        self.reactor.connect(self.client, delay)

    def close(self) -> None:
        """Disconnect cleanly (after what is queued)."""
        self.reactor.close(self.client)

    def _connected(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.warning("fleet connection %s: broker refused it: %s", self.client_id, reason)
            return
        self.ready = False
        self._pending.clear()
        for start in range(0, len(self._filters), _SUBSCRIBE_BATCH):
            mid = client.subscribe(self._filters[start : start + _SUBSCRIBE_BATCH])[1]
            if mid is not None:
                self._pending.add(mid)

    def _subscribed(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        if any(r.is_failure for r in reasons):
            log.error("fleet connection %s: some subscriptions were refused", self.client_id)
        self._pending.discard(mid)
        if not self._pending and not self.ready:
            self.ready = True
            self._on_up(self)

    def _message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.reactor.handled += 1
        parts = message.topic.split("/")
        device = self.devices.get(parts[2]) if len(parts) > 2 else None
        if device is None:
            return
        try:
            device.on_message(parts, _bytes(message.payload))
        except Exception:
            log.exception("device %s: message on %r failed", device.client_id, message.topic)

    def _disconnected(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.ready = False
        self._on_down(self)
