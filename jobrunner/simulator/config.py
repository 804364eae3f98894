"""FleetConfig: everything that shapes a simulated fleet, and the broker it connects to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from jobrunner.device.settings import BrokerSettings
from jobrunner.simulator.catalog import ALL_APPS, LEGACY_APPS
from jobrunner.simulator.faults import FaultPlan

ConnectionMode = Literal["auto", "per-device", "shared"]
Encoding = Literal["kura-protobuf", "simple-json"]

PER_DEVICE_LIMIT = 200
"""`auto` mode gives each device its own connection up to this many devices."""


@dataclass(frozen=True, slots=True)
class Timing:
    """How long the simulated work takes (seconds) and how big a package is."""

    download_seconds: float = 2.0
    install_seconds: float = 0.5
    uninstall_seconds: float = 0.5
    activity_seconds: float = 2.0
    config_apply_seconds: float = 1.0
    """Kura answers a configuration PUT once it parsed it and applies it about 1 s later."""
    reboot_seconds: float = 5.0
    package_size: int = 131_072
    progress_steps: int = 4
    """IN_PROGRESS notifications of a download when the request sets no notify block size
    (Kura sends one per 5 %; fewer keep a 10,000-device rollout light)."""


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """What kind of gateway a device is: its apps, payload encoding and birth identity."""

    apps: tuple[str, ...] = ALL_APPS
    encoding: Encoding = "kura-protobuf"
    gzip: bool = True
    """Kura's `encode.gzip` (default true): a payload is gzipped when that makes it shorter."""
    model_name: str = "ReliaGATE 10-14"
    model_id: str = "RGATE-10-14"
    firmware_version: str = "fw-5.4.1"
    kura_version: str = "KURA_5.4.1"
    application_framework: str = "ESF"
    application_framework_version: str = "7.5.0"
    command_password: str | None = None
    """Kura's `command.password.value`; None or empty: commands need no password."""


LEGACY_PROFILE = DeviceProfile(
    apps=LEGACY_APPS,
    model_name="Raspberry Pi 3 Model B",
    model_id="RPI-3B",
    firmware_version="fw-4.1.0",
    kura_version="KURA_4.1.0",
    application_framework="Kura",
    application_framework_version="4.1.0",
)


@dataclass(frozen=True)
class FleetConfig:
    """A simulated fleet: `devices` gateways `{prefix}{n:0{digits}d}` of one account.

    `profiles` maps device patterns (globs, comma lists, as in fault specs) to the profile
    of the devices they match, first match wins; others get `profile`.
    """

    devices: int = 10
    broker: str | BrokerSettings = "mqtt://127.0.0.1:1883"
    """The broker's URL, or the runner's own broker settings (credentials, TLS files): the
    fleet reaches the broker the way the runner does."""
    account: str = "default"
    prefix: str = "gw-"
    first: int = 1
    digits: int = 4
    mode: ConnectionMode = "auto"
    connections: int = 2
    """Connections of the shared mode."""
    profile: DeviceProfile = field(default_factory=DeviceProfile)
    profiles: tuple[tuple[str, DeviceProfile], ...] = ()
    versions: tuple[tuple[str, str], ...] = ()
    """(device pattern, kura_version): the Kura version these devices report in their BIRTH,
    whatever their profile (a fleet some of whose gateways run `KURA_5.5.0`, others
    `KURA_4.1.0`, for label selectors such as `kura.version>=5.4`); first match wins."""
    tags: tuple[tuple[str, str], ...] = ()
    """(device pattern, tag): the devices a fault's `tag:NAME` selects (a fleet whose
    canaries fail, say); give them the same tags in the DeviceList."""
    faults: FaultPlan = field(default_factory=FaultPlan)
    timing: Timing = field(default_factory=Timing)
    subscribe_qos: int = 1
    """Kura subscribes to its control topics at QoS 1."""
    connect_rate: float = 0.0
    """Births per second at start (0: as fast as the broker takes them)."""
    keepalive: int = 60
    observe: bool = True
    """Keep a log of every request each device received (counters are always kept)."""
    log_limit: int = 1000
    """Requests kept in each device's log (the oldest go first)."""
    start_timeout: float = 60.0
    client_id_base: str = ""
    """Client id stem of the shared connections (default: jobrunner-sim-{account}-{pid})."""

    def device_ids(self) -> list[str]:
        """The client ids of the fleet, in order."""
        return [
            f"{self.prefix}{n:0{self.digits}d}"
            for n in range(self.first, self.first + self.devices)
        ]

    def broker_settings(self) -> BrokerSettings:
        """Where and how the fleet's connections reach the broker (ConfigError for a bad URL)."""
        if isinstance(self.broker, BrokerSettings):
            return self.broker
        return BrokerSettings.from_url(self.broker)

    def resolved_mode(self) -> Literal["per-device", "shared"]:
        """The connection mode `auto` stands for with this many devices."""
        if self.mode == "auto":
            return "per-device" if self.devices <= PER_DEVICE_LIMIT else "shared"
        return self.mode
