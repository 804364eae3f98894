"""The state of one simulated gateway, copied from the shared inventory only where it changes.

Reads return the device's own table when it has one, else the inventory's; the first write
to a table copies it. A fleet of 10,000 untouched devices therefore shares one inventory.
Callers hold the device's lock (see `device.SimDevice`) around reads and writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from jobrunner.simulator.catalog import (
    COMMAND_PID,
    INVENTORY,
    Bundle,
    Channel,
    Component,
    DeviceCertificate,
    Inventory,
    KeyEntry,
    Package,
    Property,
)


@dataclass(slots=True)
class PendingDownload:
    """A download (and the install after it) that DEPLOY-V2 is working on."""

    job_id: int
    name: str
    version: str
    uri: str
    requester: str
    size: int
    progress: int = 0
    status: str = "IN_PROGRESS"
    installing: bool = False
    cancelled: bool = False


@dataclass(slots=True)
class DeviceState:
    """Everything a device would keep across requests (and lose on nothing but a fleet restart)."""

    inventory: Inventory = INVENTORY
    _bundles: dict[int, Bundle] | None = None
    _packages: dict[str, Package] | None = None
    _components: dict[str, Component] | None = None
    _keystores: dict[str, dict[str, KeyEntry]] | None = None
    _assets: dict[str, dict[str, Channel]] | None = None
    _certificates: dict[str, DeviceCertificate] | None = None
    next_bundle_id: int = 0
    downloaded: set[str] = field(default_factory=set)
    """Files `{name}_{version}.dp` downloaded and not installed yet (install: false)."""
    download: PendingDownload | None = None
    install: PendingDownload | None = None
    """The install in progress (GET install reports it)."""
    deploy_queue: list[object] = field(default_factory=list)
    """Deployment work waiting for the one in progress (Kura runs it on one thread)."""
    _snapshots: dict[int, Mapping[str, Component]] | None = None
    last_snapshot: int = 0
    """The newest snapshot id the device gave (kept or not): the next one is larger."""

    @classmethod
    def initial(cls, command_password: str | None = None) -> DeviceState:
        """A device as it starts; with a password that CMD-V1 requests must carry."""
        state = cls()
        if command_password:
            current = state.components[COMMAND_PID]
            properties = dict(current.properties)
            properties["command.password.value"] = Property(
                "command.password.value", "Password", (command_password,)
            )
            state.set_component(Component(COMMAND_PID, MappingProxyType(properties)))
        return state

    # --- bundles and packages -------------------------------------------------------------

    @property
    def bundles(self) -> Mapping[int, Bundle]:
        """Bundles by id."""
        return self._bundles if self._bundles is not None else self.inventory.bundles

    def set_bundle(self, bundle: Bundle) -> None:
        """Add or replace a bundle."""
        if self._bundles is None:
            self._bundles = dict(self.inventory.bundles)
        self._bundles[bundle.id] = bundle

    def remove_bundle(self, bundle_id: int) -> None:
        """Forget a bundle."""
        if self._bundles is None:
            self._bundles = dict(self.inventory.bundles)
        self._bundles.pop(bundle_id, None)

    def new_bundle_id(self) -> int:
        """An id no bundle of this device has had."""
        if self.next_bundle_id == 0:
            self.next_bundle_id = max(self.inventory.first_free_bundle_id, max(self.bundles) + 1)
        self.next_bundle_id += 1
        return self.next_bundle_id - 1

    @property
    def packages(self) -> Mapping[str, Package]:
        """Installed deployment packages by name."""
        return self._packages if self._packages is not None else self.inventory.packages

    def set_package(self, package: Package) -> None:
        """Add or replace a package."""
        if self._packages is None:
            self._packages = dict(self.inventory.packages)
        self._packages[package.name] = package

    def remove_package(self, name: str) -> Package | None:
        """Forget a package; the package it was, if any."""
        if self._packages is None:
            self._packages = dict(self.inventory.packages)
        return self._packages.pop(name, None)

    # --- configurations ------------------------------------------------------------------

    @property
    def components(self) -> Mapping[str, Component]:
        """Component configurations by PID."""
        return self._components if self._components is not None else self.inventory.components

    def set_component(self, component: Component) -> None:
        """Replace a component configuration."""
        if self._components is None:
            self._components = dict(self.inventory.components)
        self._components[component.pid] = component

    def setting(self, pid: str, name: str) -> str | None:
        """The first value of a configuration property, as text (None when absent)."""
        component = self.components.get(pid)
        prop = component.properties.get(name) if component else None
        return prop.values[0] if prop and prop.values else None

    # --- configuration snapshots ----------------------------------------------------------

    @property
    def snapshots(self) -> Mapping[int, Mapping[str, Component]]:
        """Kept snapshots by id; every device starts with snapshot 0, its first configuration."""
        if self._snapshots is not None:
            return self._snapshots
        return {0: self.inventory.components}

    def add_snapshot(self, snapshot_id: int, components: Mapping[str, Component]) -> None:
        """Keep a snapshot (the caller prunes to Kura's count)."""
        if self._snapshots is None:
            self._snapshots = {0: self.inventory.components}
        self._snapshots[snapshot_id] = components
        self.last_snapshot = max(self.last_snapshot, snapshot_id)

    def remove_snapshot(self, snapshot_id: int) -> None:
        """Forget a snapshot (nothing when absent)."""
        if self._snapshots is None:
            self._snapshots = {0: self.inventory.components}
        self._snapshots.pop(snapshot_id, None)

    # --- keystores -------------------------------------------------------------------------

    @property
    def keystores(self) -> Mapping[str, Mapping[str, KeyEntry]]:
        """Keystore entries by keystore PID and alias."""
        return self._keystores if self._keystores is not None else self.inventory.keystores

    def _own_keystores(self) -> dict[str, dict[str, KeyEntry]]:
        if self._keystores is None:
            self._keystores = {pid: dict(e) for pid, e in self.inventory.keystores.items()}
        return self._keystores

    def set_key_entry(self, keystore: str, entry: KeyEntry) -> None:
        """Add or replace a keystore entry."""
        self._own_keystores()[keystore][entry.alias] = entry

    def delete_key_entry(self, keystore: str, alias: str) -> None:
        """Remove a keystore entry (nothing when absent)."""
        self._own_keystores()[keystore].pop(alias, None)

    # --- assets ----------------------------------------------------------------------------

    @property
    def assets(self) -> Mapping[str, Mapping[str, Channel]]:
        """Asset channels by asset and channel name."""
        return self._assets if self._assets is not None else self.inventory.assets

    def set_channel(self, asset: str, channel: Channel) -> None:
        """Replace a channel's value."""
        if self._assets is None:
            self._assets = {name: dict(c) for name, c in self.inventory.assets.items()}
        self._assets[asset][channel.name] = channel

    # --- device certificates (CERT-V1) -----------------------------------------------------

    @property
    def certificates(self) -> Mapping[str, DeviceCertificate]:
        """CERT-V1 certificates by alias."""
        if self._certificates is not None:
            return self._certificates
        return self.inventory.certificates

    def set_certificate(self, certificate: DeviceCertificate) -> None:
        """Add or replace a certificate."""
        if self._certificates is None:
            self._certificates = dict(self.inventory.certificates)
        self._certificates[certificate.alias] = certificate

    def remove_certificate(self, alias: str) -> None:
        """Remove a certificate."""
        if self._certificates is None:
            self._certificates = dict(self.inventory.certificates)
        self._certificates.pop(alias, None)
