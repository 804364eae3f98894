"""The device layer: Kura's request/response protocol over MQTT.

- `DeviceClient` (client.py): the runner's one MQTT connection; `send` / `expect` requests,
  reports replies, timeouts, notifications, lifecycle messages, anomalies and connection
  changes to a `ClientEvents` handler (model.py).
- `BrokerSettings` (settings.py): broker URL, client id, credentials, TLS.
- `operations`: the 13 step definitions as pure request builders and reply / notification
  interpreters (`operation_for_step`).
- `read_lifecycle` (lifecycle.py): BIRTH / APPS / DC / LWT payloads as typed facts.
- payload.py, jsoncodec.py, topics.py: the wire formats.
- connection.py (the session: connect, subscribe, reconnect) and pahoclient.py (paho's client,
  cheaper per message: what the broker sends read in blocks, a turn's requests written
  together): the only modules that import paho.
"""

from __future__ import annotations

from jobrunner.device.client import DeviceClient, codec_named
from jobrunner.device.lifecycle import ConnectionStatus, DeviceFacts, LifecycleEvent, read_lifecycle
from jobrunner.device.model import (
    Anomaly,
    AnomalyKind,
    ClientEvents,
    Device,
    PayloadCodec,
    Pending,
    Request,
    Tracked,
    device_text,
)
from jobrunner.device.operations import (
    OPERATIONS,
    AsyncState,
    Operation,
    OperationSettings,
    Outcome,
    OutcomeStatus,
    StatusQuery,
    operation_for,
    operation_for_step,
)
from jobrunner.device.payload import KuraPayload, Metric, MetricType
from jobrunner.device.settings import BrokerSettings
from jobrunner.device.topics import Lifecycle, LifecycleTopic, NotifyTopic
from jobrunner.errors import (
    ClientBusyError,
    ConnectError,
    DeviceError,
    NotConnectedError,
    OperationError,
    PayloadError,
)

__all__ = [
    "OPERATIONS",
    "Anomaly",
    "AnomalyKind",
    "AsyncState",
    "BrokerSettings",
    "ClientBusyError",
    "ClientEvents",
    "ConnectError",
    "ConnectionStatus",
    "Device",
    "DeviceClient",
    "DeviceError",
    "DeviceFacts",
    "KuraPayload",
    "Lifecycle",
    "LifecycleEvent",
    "LifecycleTopic",
    "Metric",
    "MetricType",
    "NotConnectedError",
    "NotifyTopic",
    "Operation",
    "OperationError",
    "OperationSettings",
    "Outcome",
    "OutcomeStatus",
    "PayloadCodec",
    "PayloadError",
    "Pending",
    "Request",
    "StatusQuery",
    "Tracked",
    "codec_named",
    "device_text",
    "operation_for",
    "operation_for_step",
    "read_lifecycle",
]
