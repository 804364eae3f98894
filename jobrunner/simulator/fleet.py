"""Fleet: a simulated Kura fleet on a broker, for demos, tests and benchmarks.

    with Fleet(FleetConfig(devices=20, broker=broker.url, account="acme")) as fleet:
        ...                                    # drive the devices over MQTT
        assert fleet.count("gw-0007", "bundle-stop") == 1
        assert fleet.contacted("download") == {"gw-0001", "gw-0002"}

`start()` returns once every device that is not offline at start has connected,
subscribed and published its BIRTH; `stop()` publishes each connected device's DC and
disconnects cleanly. The connection modes are described in `jobrunner.simulator.connections`;
`FleetConfig.mode="auto"` picks one connection per device up to 200 devices, shared
connections above. Devices can be taken down and brought back (`disconnect`, `connect`,
`reboot`) and their supported apps changed (`set_apps`, which publishes APPS).

What the devices received (every control message, answered or not, whatever the faults
made of it), from any thread:

    count(device=None, operation=None)     how many requests (always counted)
    contacted(operation=None)              which devices received any
    requests(device=None, operation=None)  the requests themselves, with their payloads
                                           (kept when FleetConfig.observe, the default)
    lifecycle(device=None, kind=None)      BIRTH / APPS / DC / LWT, in order
    wait_for(predicate, timeout)           block until a condition over the above holds
    device(id).state                       bundles, packages, configurations, keystores...
    reset_observations()                   start counting afresh

Operation names are those of `jobrunner.simulator.operations` (`bundle-stop`, `download`...).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Literal

from jobrunner.simulator.config import DeviceProfile, FleetConfig
from jobrunner.simulator.connections import DeviceConnection, SharedConnection
from jobrunner.simulator.device import Runtime, SimDevice
from jobrunner.simulator.faults import DisconnectFault, Selector
from jobrunner.simulator.lifecycle import publish_lifecycle
from jobrunner.simulator.observe import LifecycleEvent, LifecycleKind, Observer, ReceivedRequest
from jobrunner.simulator.reactor import Reactor
from jobrunner.simulator.state import DeviceState
from jobrunner.simulator.timer import Timer


class FleetError(RuntimeError):
    """The fleet could not be started (broker unreachable, devices did not come up)."""


class Fleet:
    """A simulated fleet; see the module docstring. Usable as a context manager."""

    def __init__(self, config: FleetConfig) -> None:
        if config.devices < 0:
            raise ValueError("a fleet has zero or more devices")
        self.config = config
        self.address = config.broker_settings()
        self.mode: Literal["per-device", "shared"] = config.resolved_mode()
        self.timer = Timer()
        self.reactor = Reactor(self.timer)
        self.observer = Observer()
        self.runtime = Runtime(
            account=config.account,
            timing=config.timing,
            timer=self.timer,
            observer=self.observer,
            observe=config.observe,
            log_limit=config.log_limit,
            reboot=self._reboot,
            disconnect=self._fault_disconnect,
        )
        self.devices: dict[str, SimDevice] = {}
        for number, client_id in enumerate(config.device_ids(), start=config.first):
            profile = self._profile(client_id)
            self.devices[client_id] = SimDevice(
                client_id,
                number,
                profile,
                self.runtime,
                config.faults.for_device(client_id, self._tags(client_id)),
                DeviceState.initial(profile.command_password),
            )
        self._links: dict[str, DeviceConnection] = {}
        self._shared: list[SharedConnection] = []
        self._waiting_for: set[str] = set()
        self._up = threading.Event()
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False

    # --- start and stop ---------------------------------------------------------------------

    def start(self) -> Fleet:
        """Connect the fleet; return when every device online at start has its BIRTH out."""
        if self._started:
            return self
        self._started = True
        config = self.config
        self.timer.start()
        self.reactor.start()
        later = {
            cid: fault
            for cid in self.devices
            if (fault := config.faults.offline_at_start(cid)) is not None
        }
        present = [d for cid, d in self.devices.items() if cid not in later]
        with self._lock:
            self._waiting_for = {d.client_id for d in present}
        for device in present:
            device.present = True
        if self.mode == "per-device":
            for cid, device in self.devices.items():
                link = DeviceConnection(
                    device,
                    self.address,
                    config.account,
                    config.subscribe_qos,
                    config.keepalive,
                    self.reactor,
                    self._device_up,
                    self._device_down,
                )
                self._links[cid] = link
                device.link = link
            for i, device in enumerate(present):
                self._paced(i, self._links[device.client_id].start, device.client_id)
        else:
            count = max(1, min(config.connections, len(self.devices)))
            base = config.client_id_base or f"jobrunner-sim-{config.account}-{os.getpid()}"
            devices = list(self.devices.values())
            for i in range(count):
                shared = SharedConnection(
                    f"{base}-{i}",
                    devices[i::count],
                    self.address,
                    config.account,
                    config.subscribe_qos,
                    config.keepalive,
                    self.reactor,
                    self._shared_up,
                    self._shared_down,
                )
                self._shared.append(shared)
                shared.start()
        for cid, fault in later.items():
            if fault.connect_after is not None:
                self.timer.call_later(
                    fault.connect_after, functools.partial(self.connect, cid), cid
                )
        if present and not self._up.wait(config.start_timeout):
            with self._lock:
                missing = len(self._waiting_for)
            self.stop()
            raise FleetError(
                f"{len(present) - missing} of {len(present)} simulated devices came up on "
                f"{self.address.host}:{self.address.port} within {config.start_timeout:.0f}s;"
                " is the broker running"
                " and does it accept this many connections?"
            )
        return self

    def stop(self) -> None:
        """Publish DC for every connected device, disconnect cleanly, stop the timer."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        for device in self.devices.values():
            with device.lock:
                if device.online:
                    self._publish_dc(device)
                device.present = device.online = False
        for link in self._links.values():
            link.close()
        for shared in self._shared:
            shared.close()
        self.reactor.wait_closed(10.0)
        self.reactor.stop()
        self.timer.stop()

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- driving devices -----------------------------------------------------------------------

    def disconnect(
        self, client_id: str, reconnect_after: float | None = None, clean: bool = False
    ) -> None:
        """Take a device offline: abruptly (the LWT goes out) or cleanly (DC first).

        With `reconnect_after` it comes back that many seconds later, with a new BIRTH.
        """
        device = self.device(client_id)
        with device.lock:
            self._take_offline(device, clean)
        if reconnect_after is not None:
            self.timer.call_later(reconnect_after, lambda: self.connect(client_id), client_id)

    def connect(self, client_id: str) -> None:
        """Bring a device (back) online; its BIRTH follows once it is subscribed."""
        device = self.device(client_id)
        with device.lock:
            if device.present:
                return
            device.present = True
            if self.mode == "per-device":
                self._links[client_id].start()
            elif self._shared_of(device).ready:
                self._birth(device)

    def reboot(self, client_id: str, delay: float = 0.0) -> None:
        """Restart a device: DC, offline for `Timing.reboot_seconds`, then a new BIRTH."""
        self._reboot(self.device(client_id), delay)

    def set_apps(self, client_id: str, apps: Iterable[str]) -> None:
        """Change the apps a device supports and publish APPS, as Kura does when a request
        handler comes or goes."""
        device = self.device(client_id)
        with device.lock:
            device.apps = tuple(apps)
            if device.online:
                self._lifecycle(device, "APPS", qos=1)

    # --- observation ---------------------------------------------------------------------------

    def device(self, client_id: str) -> SimDevice:
        """The simulated device with this client id (KeyError names it otherwise)."""
        try:
            return self.devices[client_id]
        except KeyError:
            raise KeyError(f"the fleet has no device {client_id!r}") from None

    def requests(
        self, client_id: str | None = None, operation: str | None = None
    ) -> list[ReceivedRequest]:
        """Requests received (oldest first, up to `log_limit` per device)."""
        found: list[ReceivedRequest] = []
        for device in self._chosen(client_id):
            with device.lock:
                entries = list(device.log or ())
            found.extend(e for e in entries if operation is None or e.operation == operation)
        found.sort(key=lambda e: e.at)
        return found

    def count(self, client_id: str | None = None, operation: str | None = None) -> int:
        """How many requests (of `operation`) one device, or the whole fleet, received."""
        total = 0
        for device in self._chosen(client_id):
            with device.lock:
                counts = dict(device.counts)
            total += sum(counts.values()) if operation is None else counts.get(operation, 0)
        return total

    def contacted(self, operation: str | None = None) -> set[str]:
        """The devices that received at least one request (of `operation`)."""
        return {cid for cid in self.devices if self.count(cid, operation)}

    def lifecycle(
        self, client_id: str | None = None, kind: LifecycleKind | None = None
    ) -> list[LifecycleEvent]:
        """BIRTH, APPS, DC and LWT messages of the fleet's devices, oldest first."""
        return [
            e
            for e in self.observer.lifecycle_events()
            if (client_id is None or e.device == client_id) and (kind is None or e.kind == kind)
        ]

    def online(self) -> list[str]:
        """Client ids of the devices connected now."""
        return [cid for cid, d in self.devices.items() if d.online]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until `predicate()` holds (checked on every request and lifecycle message)."""
        return self.observer.wait_for(predicate, timeout)

    def reset_observations(self) -> None:
        """Forget every request and lifecycle message seen so far."""
        for device in self.devices.values():
            with device.lock:
                device.counts.clear()
                device.log = None
        self.observer.clear()

    def describe(self) -> str:
        """One line: how many devices, which ids, where, in which mode and encoding."""
        ids = list(self.devices)
        span = f"{ids[0]}..{ids[-1]}" if ids else "none"
        links = len(self._links) if self.mode == "per-device" else len(self._shared)
        profile = self.config.profile
        encoding = profile.encoding + (
            "+gzip" if profile.gzip and profile.encoding == "kura-protobuf" else ""
        )
        scheme = "mqtts" if self.address.tls else "mqtt"
        return (
            f"{len(ids)} simulated devices ({span}) of account {self.config.account!r} on "
            f"{scheme}://{self.address.host}:{self.address.port}, {self.mode} mode"
            f" ({links} connections), {encoding}"
        )

    # --- internals ---------------------------------------------------------------------------

    def _profile(self, client_id: str) -> DeviceProfile:
        chosen = self.config.profile
        for pattern, profile in self.config.profiles:
            if Selector(pattern).matches_device(client_id):
                chosen = profile
                break
        for pattern, version in self.config.versions:
            if Selector(pattern).matches_device(client_id):
                return dataclasses.replace(chosen, kura_version=version)
        return chosen

    def _tags(self, client_id: str) -> frozenset[str]:
        return frozenset(
            tag for pattern, tag in self.config.tags if Selector(pattern).matches_device(client_id)
        )

    def _chosen(self, client_id: str | None) -> list[SimDevice]:
        return list(self.devices.values()) if client_id is None else [self.device(client_id)]

    def _paced(self, i: int, start: Callable[[], None], label: str) -> None:
        rate = self.config.connect_rate
        if rate > 0:
            self.timer.call_later(i / rate, start, label)
        else:
            start()

    def _shared_of(self, device: SimDevice) -> SharedConnection:
        link = device.link
        assert isinstance(link, SharedConnection)
        return link

    def _birth(self, device: SimDevice) -> None:
        """Publish the BIRTH of a present device whose link is up (device lock held)."""
        device.online = True
        self._lifecycle(device, "BIRTH", qos=1)
        with self._lock:
            self._waiting_for.discard(device.client_id)
            if not self._waiting_for:
                self._up.set()

    def _lifecycle(self, device: SimDevice, kind: LifecycleKind, qos: int) -> None:
        publish_lifecycle(device, self.config.account, kind, qos)
        self.observer.lifecycle(device.client_id, kind)

    def _publish_dc(self, device: SimDevice) -> None:
        publish_lifecycle(device, self.config.account, "DC", 0)
        self.observer.lifecycle(device.client_id, "DC")

    def _device_up(self, device: SimDevice) -> None:
        with device.lock:
            if device.present and not device.online:
                self._birth(device)

    def _device_down(self, device: SimDevice) -> None:
        with device.lock:
            device.online = False
            if device.present and not self._stopped:  # lost, not taken down: reconnect
                self._links[device.client_id].start(1.0)

    def _shared_up(self, shared: SharedConnection) -> None:
        for i, device in enumerate(d for d in shared.devices.values() if d.present):
            self._paced(i, functools.partial(self._device_up, device), device.client_id)

    def _shared_down(self, shared: SharedConnection) -> None:
        for device in shared.devices.values():
            with device.lock:
                device.online = False
        if not self._stopped:
            shared.start(1.0)

    def _take_offline(self, device: SimDevice, clean: bool) -> None:
        """Device lock held."""
        if not device.present:
            return
        if clean and device.online:
            self._publish_dc(device)
        was_online = device.online
        device.present = device.online = False
        if self.mode == "per-device":
            link = self._links[device.client_id]
            if clean:
                link.close()
            else:
                link.drop()
        elif not clean:
            shared = self._shared_of(device)
            if shared.ready:
                topic = f"$EDC/{self.config.account}/{device.client_id}/MQTT/LWT"
                shared.publish(topic, b"", 0)  # the will of a device with a connection of its own
        if not clean and was_online:
            self.observer.lifecycle(device.client_id, "LWT")

    def _fault_disconnect(self, device: SimDevice, fault: DisconnectFault) -> None:
        # Called from a request handler, with the device lock held: act on the timer.
        def drop() -> None:
            self.disconnect(device.client_id, fault.reconnect)

        self.timer.call_later(0.0, drop, f"{device.client_id} disconnect")

    def _reboot(self, device: SimDevice, delay: float) -> None:
        def down() -> None:
            with device.lock:
                self._take_offline(device, clean=True)
            self.timer.call_later(self.config.timing.reboot_seconds, up, device.client_id)

        def up() -> None:
            device.started = time.monotonic()
            self.connect(device.client_id)

        self.timer.call_later(delay, down, f"{device.client_id} reboot")
