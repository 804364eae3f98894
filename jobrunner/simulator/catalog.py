"""What a simulated gateway has when it starts: bundles, packages, configurations, keystores,
assets, device certificates, and the apps it supports.

The inventory is plausible for a Kura 5 gateway and carries what the example jobs in
`jobs.d/` act on: the Modbus driver bundle 42 (package `org.eclipse.kura.driver.modbus`
1.1.0), the ACME monitoring agent 2.3.1, the `SSLKeystore` with the 2026 broker CA, the
warehouse cloud publisher and the cold-room controller asset. Every device starts from the
same immutable inventory and copies a part only when it changes it (`state.DeviceState`),
so an untouched device costs a few hundred bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

ALL_APPS: tuple[str, ...] = (
    "CMD-V1",
    "CONF-V1",
    "DEPLOY-V2",
    "ASSET-V1",
    "KEYS-V1",
    "CERT-V1",
    "ANSIBLE-V1",
)
"""A current ESF gateway: every app a job step can use."""

LEGACY_APPS: tuple[str, ...] = ("CMD-V1", "CONF-V1", "DEPLOY-V2", "ASSET-V1")
"""An older Kura gateway: no keystore service, no certificate management, no activities."""

COMMAND_PID = "org.eclipse.kura.cloud.app.command.CommandCloudApp"
"""The command service's configuration: `command.enable`, `command.password.value`, ..."""

BundleState = Literal["INSTALLED", "RESOLVED", "STARTING", "STOPPING", "ACTIVE", "UNINSTALLED"]


@dataclass(frozen=True, slots=True)
class Bundle:
    """An OSGi bundle as GET bundles lists it."""

    id: int
    name: str
    version: str
    state: BundleState = "ACTIVE"
    startable: bool = True
    """False for a bundle whose dependencies do not resolve: start fails as in OSGi."""


@dataclass(frozen=True, slots=True)
class Package:
    """A deployment package and the bundles it installed."""

    name: str
    version: str
    bundle_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Property:
    """One property of a component configuration, values as their XML text."""

    name: str
    type: str
    values: tuple[str, ...]
    array: bool = False
    encrypted: bool = False


@dataclass(frozen=True, slots=True)
class Component:
    """A component configuration (CONF-V1), by PID."""

    pid: str
    properties: Mapping[str, Property]


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """A keystore entry: a trusted certificate or a key pair."""

    alias: str
    type: Literal["TRUSTED_CERTIFICATE", "PRIVATE_KEY"]
    algorithm: str
    size: int
    subject: str
    certificate: str | None = None
    signature_algorithm: str | None = None


@dataclass(frozen=True, slots=True)
class Channel:
    """An asset channel; `value` is its text, as ASSET-V1 carries it."""

    name: str
    type: str
    value: str
    mode: Literal["READ", "WRITE", "READ_WRITE"] = "READ_WRITE"
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceCertificate:
    """A certificate installed through CERT-V1."""

    alias: str
    certificate: str
    keystore: str | None = None


def _pem(label: str) -> str:
    # Not a real certificate: the simulator checks the PEM armour, never the DER inside.
    body = "MIIBszCCAVmgAwIBAgIU" + label.encode().hex().upper()[:40].ljust(40, "A")
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def _component(pid: str, *props: tuple[str, str, str]) -> Component:
    return Component(
        pid,
        MappingProxyType({name: Property(name, kind, (value,)) for name, kind, value in props}),
    )


@dataclass(frozen=True)
class Inventory:
    """Everything a device starts with (shared by every device, never modified)."""

    bundles: Mapping[int, Bundle]
    packages: Mapping[str, Package]
    components: Mapping[str, Component]
    keystores: Mapping[str, Mapping[str, KeyEntry]]
    keystore_types: Mapping[str, str]
    assets: Mapping[str, Mapping[str, Channel]]
    certificates: Mapping[str, DeviceCertificate] = field(default_factory=dict)
    first_free_bundle_id: int = 100


_BUNDLES = (
    Bundle(0, "org.eclipse.osgi", "3.18.0.v20220516-2155"),
    Bundle(1, "org.eclipse.equinox.common", "3.16.100.v20220315-2327"),
    Bundle(2, "org.eclipse.equinox.ds", "1.6.0.v20190122-0806"),
    Bundle(3, "org.eclipse.equinox.cm", "1.4.400.v20200422-1833"),
    Bundle(4, "org.eclipse.kura.api", "2.4.0"),
    Bundle(5, "org.eclipse.kura.core", "1.2.0"),
    Bundle(6, "org.eclipse.kura.core.cloud", "1.2.0"),
    Bundle(7, "org.eclipse.kura.core.configuration", "2.0.0"),
    Bundle(8, "org.eclipse.kura.core.deployment", "1.2.0"),
    Bundle(9, "org.eclipse.kura.core.keystore", "1.2.0"),
    Bundle(10, "org.eclipse.kura.asset.cloudlet.provider", "1.2.0"),
    Bundle(11, "org.eclipse.kura.cloud.app.command", "1.2.0"),
    Bundle(12, "org.eclipse.kura.wire.provider", "1.2.0", "RESOLVED"),
    Bundle(42, "org.eclipse.kura.driver.modbus", "1.1.0"),
    Bundle(57, "com.acme.monitoring.agent", "2.3.1"),
    Bundle(60, "org.eclipse.kura.example.unresolved", "1.0.0", "INSTALLED", startable=False),
)

INVENTORY = Inventory(
    bundles=MappingProxyType({b.id: b for b in _BUNDLES}),
    packages=MappingProxyType(
        {
            "org.eclipse.kura.driver.modbus": Package(
                "org.eclipse.kura.driver.modbus", "1.1.0", (42,)
            ),
            "com.acme.monitoring.agent": Package("com.acme.monitoring.agent", "2.3.1", (57,)),
        }
    ),
    components=MappingProxyType(
        {
            c.pid: c
            for c in (
                _component(
                    "org.eclipse.kura.cloud.CloudService",
                    ("topic.control-prefix", "String", "$EDC"),
                    ("device.display-name", "String", "device-name"),
                    ("encode.gzip", "Boolean", "true"),
                    ("payload.encoding", "String", "kura-protobuf"),
                    ("enable.default.subscriptions", "Boolean", "true"),
                ),
                _component(
                    "org.eclipse.kura.cloud.publisher.CloudPublisher-warehouse",
                    ("publish.interval", "Integer", "60"),
                    ("publish.qos", "Integer", "0"),
                    ("app.topic", "String", "warehouse/data"),
                    ("appId", "String", "W1"),
                ),
                _component(
                    "org.eclipse.kura.clock.ClockService",
                    ("enabled", "Boolean", "true"),
                    ("clock.provider", "String", "java-ntp"),
                    ("clock.ntp.host", "String", "0.pool.ntp.org"),
                    ("clock.ntp.refresh-interval", "Integer", "3600"),
                ),
                _component(  # an instance of the Modbus driver (factory ...driver.modbus)
                    "modbus-driver",
                    ("access.type", "String", "TCP"),
                    ("modbus.tcp-udp.ip", "String", "192.168.0.10"),
                    ("modbus.tcp-udp.port", "Integer", "502"),
                ),
                _component(
                    "org.eclipse.kura.watchdog.WatchdogService",
                    ("enabled", "Boolean", "false"),
                    ("pingInterval", "Integer", "10000"),
                ),
                _component(
                    COMMAND_PID,
                    ("command.enable", "Boolean", "true"),
                    ("command.timeout", "Integer", "60"),
                    ("command.working.directory", "String", "/tmp"),
                ),
            )
        }
    ),
    keystores=MappingProxyType(
        {
            "SSLKeystore": MappingProxyType(
                {
                    "broker-ca-2026": KeyEntry(
                        "broker-ca-2026",
                        "TRUSTED_CERTIFICATE",
                        "SHA256withECDSA",
                        256,
                        "CN=ACME Broker CA 2026",
                        _pem("broker-ca-2026"),
                    ),
                    "mqtt-client-2026": KeyEntry(
                        "mqtt-client-2026",
                        "PRIVATE_KEY",
                        "EC",
                        256,
                        "CN=gateway,O=ACME,C=IT",
                        signature_algorithm="SHA256withECDSA",
                    ),
                }
            ),
            "HttpsKeystore": MappingProxyType(
                {
                    "localhost": KeyEntry(
                        "localhost",
                        "PRIVATE_KEY",
                        "RSA",
                        2048,
                        "CN=localhost",
                        signature_algorithm="SHA256withRSA",
                    ),
                }
            ),
        }
    ),
    keystore_types=MappingProxyType({"SSLKeystore": "PKCS12", "HttpsKeystore": "PKCS12"}),
    assets=MappingProxyType(
        {
            "cold-room-controller": MappingProxyType(
                {
                    "temperature": Channel("temperature", "DOUBLE", "-19.2", "READ", "C"),
                    "alarm-threshold": Channel("alarm-threshold", "DOUBLE", "-15.0", unit="C"),
                    "alarm-enabled": Channel("alarm-enabled", "BOOLEAN", "false"),
                }
            ),
            "modbus-meter": MappingProxyType(
                {
                    "energy": Channel("energy", "LONG", "123456", "READ", "Wh"),
                    "relay": Channel("relay", "BOOLEAN", "false"),
                    "setpoint": Channel("setpoint", "INTEGER", "20"),
                }
            ),
        }
    ),
    certificates=MappingProxyType(
        {"device-2026": DeviceCertificate("device-2026", _pem("device-2026"), "SSLKeystore")}
    ),
)
