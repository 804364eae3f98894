"""One simulated gateway: it decodes a control request, applies its faults, dispatches to
the app, and publishes the reply, the way Kura's CloudService and MessageHandlerCallable
do (kura-protocol.md §2):

- no STRING `request.id` or `requester.client.id`: no reply at all;
- app ids `MQTT` and `BA` (lifecycle echoes) are ignored;
- an app the device does not run: no reply at all (Kura registers no handler for it and
  drops the request; only the BIRTH's `application_ids` tell in advance);
- a method that is neither GET, PUT, POST, DEL, EXEC nor one the app knows (SUBMIT for
  ANSIBLE-V1): 400 without a message; a Kura method the app does not implement: 500
  "Operation not supported" (Kura's RequestHandler default);
- the reply on `$EDC/{account}/{requester}/{app}/REPLY/{requestId}` at QoS 0.

This is the hot path: no logging, no allocation beyond the request, reply and log entry.
Everything that touches the device's state runs under `lock`: requests on the MQTT
client's thread, timed work on the fleet's timer thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from jobrunner.device.jsoncodec import JsonCodec
from jobrunner.device.payload import KuraPayload, Metric, MetricType, ProtobufCodec, gzip_if_smaller
from jobrunner.errors import PayloadError
from jobrunner.simulator.apps import HANDLERS
from jobrunner.simulator.apps.base import Call, KuraError, MetricTypeError, Process, Reply, Request
from jobrunner.simulator.config import DeviceProfile, Timing
from jobrunner.simulator.faults import Decision, DeviceFaults, DisconnectFault, FailOutcome
from jobrunner.simulator.observe import Observer, ReceivedRequest
from jobrunner.simulator.operations import ASYNC_OPERATIONS, operation_name
from jobrunner.simulator.state import DeviceState
from jobrunner.simulator.timer import Timer

log = logging.getLogger(__name__)

KURA_METHODS = frozenset({"GET", "PUT", "POST", "DEL", "EXEC"})
_IGNORED_APPS = frozenset({"MQTT", "BA"})
_UNSAFE = frozenset("/+#")
_GZIP_MIN = 64
"""Below this size gzip's 18-byte frame never makes a payload shorter: skip the attempt."""
_PROTOBUF = ProtobufCodec(gzip=False)
_JSON = JsonCodec()


class Link(Protocol):
    """The MQTT connection a device publishes through (its own, or a shared one)."""

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Publish `payload` on `topic` at `qos` (thread-safe)."""


@dataclass(frozen=True)
class Runtime:
    """What the devices of one fleet share: the account, the timer, and fleet actions."""

    account: str
    timing: Timing
    timer: Timer
    observer: Observer
    observe: bool
    log_limit: int
    reboot: Callable[[SimDevice, float], None]
    disconnect: Callable[[SimDevice, DisconnectFault], None]


class SimDevice:
    """A simulated Kura gateway (see the module docstring)."""

    __slots__ = (
        "_gzip",
        "_json",
        "apps",
        "client_id",
        "counts",
        "faults",
        "index",
        "link",
        "lock",
        "log",
        "online",
        "present",
        "profile",
        "runtime",
        "started",
        "state",
    )

    def __init__(
        self,
        client_id: str,
        index: int,
        profile: DeviceProfile,
        runtime: Runtime,
        faults: DeviceFaults | None = None,
        state: DeviceState | None = None,
    ) -> None:
        self.client_id = client_id
        self.index = index
        self.profile = profile
        self.apps = profile.apps
        self.runtime = runtime
        self.faults = faults
        self.state = state or DeviceState()
        self.lock = threading.Lock()
        self.present = False
        """The simulated gateway is up and wants to be connected."""
        self.online = False
        """Connected, subscribed and born: it receives requests and its messages go out."""
        self.link: Link | None = None
        self.counts: dict[str, int] = {}
        self.log: deque[ReceivedRequest] | None = None
        self.started = time.monotonic()
        self._json = profile.encoding == "simple-json"
        self._gzip = profile.gzip and not self._json

    # --- what apps use (apps.base.Device) -------------------------------------------------

    @property
    def timing(self) -> Timing:
        """How long simulated work takes."""
        return self.runtime.timing

    @property
    def uptime(self) -> float:
        """Seconds since the device (re)started."""
        return time.monotonic() - self.started

    def notify(
        self, requester: str, app_id: str, resource: str, metrics: Mapping[str, Metric]
    ) -> None:
        """Publish a notification to `requester` (lost while offline, as QoS 0 is)."""
        topic = (
            f"$EDC/{self.runtime.account}/{requester}/{app_id}/NOTIFY/{self.client_id}/{resource}"
        )
        now = int(time.time() * 1000)
        self.publish(topic, self.encode(KuraPayload(dict(metrics), timestamp=now)), 0)

    def spawn(self, process: Process, label: str) -> None:
        """Run timed work on the fleet's timer, each step under the lock."""
        timer = self.runtime.timer

        def step() -> None:
            with self.lock:
                try:
                    delay = next(process)
                except StopIteration:
                    return
                except Exception:
                    log.exception("device %s: %s failed", self.client_id, label)
                    return
            timer.call_later(delay, step, label)

        # Start on the timer: the caller holds the lock, and the reply goes out first.
        timer.call_later(0.0, step, label)

    def reply_later(self, request: Request, reply: Reply, delay: float) -> None:
        """Answer `request` after `delay` seconds."""

        def send() -> None:
            with self.lock:
                self.send_reply(request, reply)

        self.runtime.timer.call_later(delay, send, f"{self.client_id} reply")

    def reboot(self, delay: float) -> None:
        """Restart after `delay` seconds (DC, offline, BIRTH)."""
        self.runtime.reboot(self, delay)

    def phase_fails(self, operation: str) -> bool:
        """Whether a later phase of accepted work (the install of a download) fails."""
        return self.faults is not None and self.faults.phase_fails(operation)

    def sticks(self, name: str) -> bool:
        """Whether a new value of configuration property `name` is applied."""
        return self.faults is None or self.faults.sticks(name)

    @property
    def keeps_snapshots(self) -> bool:
        """False when a fault makes the snapshots it takes gone at once."""
        return self.faults is None or not self.faults.snapshot_gone

    @property
    def rolls_back(self) -> bool:
        """False when a fault makes its rollbacks restore nothing."""
        return self.faults is None or not self.faults.rollback_fails

    # --- wire -------------------------------------------------------------------------------

    def encode(self, payload: KuraPayload) -> bytes:
        """The payload in the device's encoding (protobuf gzipped when shorter, or JSON)."""
        if self._json:
            return _JSON.encode(payload)
        data = _PROTOBUF.encode(payload)
        return gzip_if_smaller(data) if self._gzip and len(data) >= _GZIP_MIN else data

    def publish(self, topic: str, data: bytes, qos: int) -> None:
        """Publish if connected; a disconnected gateway's messages are lost (QoS 0)."""
        link = self.link
        if self.online and link is not None:
            link.publish(topic, data, qos)

    def on_message(self, parts: list[str], data: bytes) -> None:
        """A message on the device's control topic, split at '/' (the hot path)."""
        if len(parts) < 4 or parts[3] in _IGNORED_APPS:
            return
        app_id = parts[3]
        method = parts[4] if len(parts) > 4 else ""
        if method == "REPLY":
            return  # Kura ignores replies addressed to its own client id
        try:
            payload = (_JSON if self._json else _PROTOBUF).decode(data)
        except PayloadError:
            return  # Kura wraps it as a body: no request.id, so no reply
        resources = tuple(parts[5:])
        with self.lock:
            if not self.online:
                return
            operation = operation_name(app_id, method, resources)
            request_id = _string(payload, "request.id")
            requester = _string(payload, "requester.client.id")
            self._record(operation, app_id, method, resources, request_id, requester, payload)
            if request_id is None or requester is None:
                return
            request = Request(app_id, method, resources, payload, request_id, requester, operation)
            if self.faults is None:
                self._answer(request, None)
                return
            self._stray(requester)
            decision = self.faults.decide(operation)
            if decision is None:
                self._answer(request, None)
            else:
                self._faulty(request, decision)

    def _record(
        self,
        operation: str,
        app_id: str,
        method: str,
        resources: tuple[str, ...],
        request_id: str | None,
        requester: str | None,
        payload: KuraPayload,
    ) -> None:
        self.counts[operation] = self.counts.get(operation, 0) + 1
        runtime = self.runtime
        if runtime.observe:
            if self.log is None:
                self.log = deque(maxlen=runtime.log_limit)
            self.log.append(
                ReceivedRequest(
                    time.time(),
                    self.client_id,
                    operation,
                    app_id,
                    method,
                    resources,
                    request_id,
                    requester,
                    payload,
                )
            )
        runtime.observer.changed()

    def _answer(self, request: Request, fail: FailOutcome | None) -> None:
        reply = self._dispatch(request, fail)
        if reply is not None:
            self.send_reply(request, reply)

    def _dispatch(self, request: Request, fail: FailOutcome | None) -> Reply | None:
        app_id, method = request.app_id, request.method
        handlers = HANDLERS.get(app_id) if app_id in self.apps else None
        if handlers is None:
            return None  # Kura has no handler registered for it: nothing answers
        handler = handlers.get(method)
        if handler is None:
            if method in KURA_METHODS:
                return Reply(500, message="Operation not supported")
            return Reply(400)
        try:
            return handler(Call(self, request, fail))
        except KuraError as error:
            return Reply(error.code, message=error.message)
        except MetricTypeError:
            return Reply(500)  # Kura's catch-all: a ClassCastException, no message
        except Exception:
            log.exception("device %s: %s %s failed", self.client_id, app_id, request.operation)
            return Reply(500)

    def send_reply(self, request: Request, reply: Reply) -> None:
        """Publish the reply to `request` (unless a fault lost it; repeated if duplicated)."""
        if request.drop:
            return
        requester, request_id = request.requester, request.request_id
        if not requester or not request_id or _UNSAFE & set(requester + request_id):
            return  # not publishable as a topic; Kura's publish would fail the same way
        topic = f"$EDC/{self.runtime.account}/{requester}/{request.app_id}/REPLY/{request_id}"
        data = self.encode(reply.to_payload(int(time.time() * 1000)))
        for _ in range(1 + request.copies):
            self.publish(topic, data, 0)

    # --- faults -----------------------------------------------------------------------------

    def _faulty(self, request: Request, decision: Decision) -> None:
        runtime = self.runtime
        if decision.delay > 0:
            later = replace(decision, delay=0.0)

            def handle() -> None:
                with self.lock:
                    self._faulty(request, later)

            runtime.timer.call_later(decision.delay, handle, f"{self.client_id} slow")
            return
        request.drop = decision.drop
        request.copies = decision.copies
        if decision.disconnect is not None:
            fault = decision.disconnect
            if fault.after <= 0:
                runtime.disconnect(self, fault)  # gone before it could work or reply
                return
            runtime.timer.call_later(
                fault.after, lambda: runtime.disconnect(self, fault), f"{self.client_id} drop"
            )
        fail = decision.fail
        if fail is not None and (
            isinstance(fail, int) or request.operation not in ASYNC_OPERATIONS
        ):
            code = fail if isinstance(fail, int) else 500
            self.send_reply(
                request,
                Reply(code, message=f"simulated failure: {request.operation} on {self.client_id}"),
            )
            return
        self._answer(request, fail)

    def _stray(self, requester: str) -> None:
        faults = self.faults
        if faults is None or faults.stray is None or faults.stray_sent:
            return
        faults.stray_sent = True
        stray = faults.stray

        def send() -> None:
            with self.lock:
                self._send_stray(requester, stray.kind)

        self.runtime.timer.call_later(stray.delay, send, f"{self.client_id} stray")

    def _send_stray(self, requester: str, kind: str) -> None:
        job_id = 7_000_000_000_000 + self.index  # an operation nobody asked for
        text = Metric(MetricType.STRING, "COMPLETED")
        hundred = Metric(MetricType.INT32, 100)
        metrics: dict[str, Metric] = {
            "client.id": Metric(MetricType.STRING, self.client_id),
            "job.id": Metric(MetricType.INT64, job_id),
        }
        app = "DEPLOY-V2"
        if kind == "download":
            metrics |= {
                "dp.download.size": Metric(MetricType.INT32, 4096),
                "dp.download.progress": hundred,
                "dp.download.status": text,
                "dp.download.index": Metric(MetricType.INT32, 0),
            }
        elif kind == "install":
            metrics |= {
                "dp.install.status": text,
                "dp.install.progress": hundred,
                "dp.name": Metric(MetricType.STRING, "org.example.unasked_1.0.0.dp"),
            }
        elif kind == "uninstall":
            metrics |= {
                "dp.uninstall.status": text,
                "dp.uninstall.progress": hundred,
                "dp.name": Metric(MetricType.STRING, "org.example.unasked"),
            }
        else:
            app = "ANSIBLE-V1"
            metrics |= {"status": text, "progress": hundred}
        self.notify(requester, app, kind, metrics)


def _string(payload: KuraPayload, name: str) -> str | None:
    """A request metric Kura casts to String: anything else counts as absent."""
    metric = payload.metrics.get(name)
    if metric is None or metric.type is not MetricType.STRING:
        return None
    value = metric.value
    return value if isinstance(value, str) else None
