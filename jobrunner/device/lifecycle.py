"""Lifecycle messages (BIRTH, APPS, DC, LWT; kura-protocol.md §3) read into typed facts.

Kura sends every BIRTH metric as a STRING; a device that sends another type is read anyway
(the value as text) and reported with an anomaly, never refused. An LWT carries whatever
the device configured (by default an empty, non-protobuf payload): only its topic matters.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from jobrunner.device.model import Anomaly, AnomalyKind, Device
from jobrunner.device.payload import KuraPayload, MetricType, Position
from jobrunner.device.topics import Lifecycle, LifecycleTopic

MAX_TEXT = 4096
"""Longest metric text kept: BIRTH values are short; anything longer is cut."""


class ConnectionStatus(StrEnum):
    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"
    MISSING = "MISSING"
    """The broker published the device's will (LWT): it vanished without a DC."""


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What a BIRTH (or APPS) says about a device; None where it said nothing."""

    display_name: str | None = None
    model_name: str | None = None
    model_id: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    kura_version: str | None = None
    esf_version: str | None = None
    application_framework: str | None = None
    application_framework_version: str | None = None
    os: str | None = None
    os_version: str | None = None
    jvm_version: str | None = None
    connection_ip: str | None = None
    connection_interface: str | None = None
    payload_encoding: str | None = None
    accept_encoding: str | None = None
    application_ids: tuple[str, ...] | None = None
    """None when the message did not list them (not the same as an empty list)."""
    uptime_ms: int | None = None
    position: Position | None = None

    @property
    def model(self) -> str | None:
        return self.model_name or self.model_id

    @property
    def framework_version(self) -> str | None:
        """Kura's version, or the application framework's (ESF) when Kura's is absent."""
        return self.kura_version or self.esf_version or self.application_framework_version


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """One lifecycle message of one device."""

    device: Device
    kind: Lifecycle
    status: ConnectionStatus
    facts: DeviceFacts | None
    """For BIRTH and APPS."""
    timestamp: int | None
    """The payload's timestamp (epoch ms), when it has one."""
    anomalies: tuple[Anomaly, ...] = ()


_STATUS = {
    Lifecycle.BIRTH: ConnectionStatus.CONNECTED,
    Lifecycle.APPS: ConnectionStatus.CONNECTED,
    Lifecycle.DC: ConnectionStatus.DISCONNECTED,
    Lifecycle.LWT: ConnectionStatus.MISSING,
}
_FACTS = (
    "display_name",
    "model_name",
    "model_id",
    "serial_number",
    "firmware_version",
    "kura_version",
    "esf_version",
    "application_framework",
    "application_framework_version",
    "os",
    "os_version",
    "jvm_version",
    "connection_ip",
    "connection_interface",
    "payload_encoding",
    "accept_encoding",
)


def read_lifecycle(topic: LifecycleTopic, payload: KuraPayload) -> LifecycleEvent:
    """The event a lifecycle message stands for; problems become anomalies, never errors."""
    device = (topic.account, topic.device)
    reader = _Reader(payload, str(topic), device, topic.kind.value)
    facts: DeviceFacts | None = None
    if topic.kind in (Lifecycle.BIRTH, Lifecycle.APPS):
        values = {name: reader.text(name) for name in _FACTS}
        ids = reader.text("application_ids")
        facts = DeviceFacts(
            **values,
            application_ids=None if ids is None else _split_ids(ids),
            uptime_ms=reader.uptime(),
            position=payload.position,
        )
    timestamp = payload.timestamp if topic.kind is not Lifecycle.LWT else None
    return LifecycleEvent(
        device, topic.kind, _STATUS[topic.kind], facts, timestamp, tuple(reader.anomalies)
    )


def _split_ids(text: str) -> tuple[str, ...]:
    """`CMD-V1,DEPLOY-V2, CONF-V1` -> ('CMD-V1', 'DEPLOY-V2', 'CONF-V1'), order kept, no repeats."""
    return tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


class _Reader:
    def __init__(self, payload: KuraPayload, topic: str, device: Device, kind: str) -> None:
        self.payload = payload
        self.topic = topic
        self.device = device
        self.kind = kind
        self.anomalies: list[Anomaly] = []

    def text(self, name: str) -> str | None:
        metric = self.payload.metrics.get(name)
        if metric is None:
            return None
        value = metric.value
        if metric.type is not MetricType.STRING:
            self.anomalies.append(
                Anomaly(
                    AnomalyKind.BAD_METRIC,
                    f"{self.kind} metric {name!r} is {metric.type.name}; Kura sends STRING."
                    " Read as text",
                    self.topic,
                    self.device,
                )
            )
        if isinstance(value, bytes):
            text = value.decode("utf-8", "replace")
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        return text[:MAX_TEXT]

    def uptime(self) -> int | None:
        text = self.text("uptime")
        if text is None:
            return None
        try:
            return int(text.strip()) if text.strip() else None
        except ValueError:
            self.anomalies.append(
                Anomaly(
                    AnomalyKind.BAD_METRIC,
                    f"{self.kind} metric 'uptime' is {text[:40]!r}, not milliseconds; ignored",
                    self.topic,
                    self.device,
                )
            )
            return None
