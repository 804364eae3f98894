"""Package Download / Install and Package Uninstall: DEPLOY-V2, asynchronous (§4.4, §4.5, §5).

The 200 reply only means "accepted"; completion comes as notifications on
`$EDC/{account}/{requester}/DEPLOY-V2/NOTIFY/{device}/{download|install|uninstall}`,
correlated by `job.id`. With `install: true`, a download COMPLETED is not final: the install
notification is. Kura publishes notifications at QoS 0, so a restarted runner may have missed
them: `status_queries` / `recover` ask the device (GET download, GET install, GET packages).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import ClassVar

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from jobrunner.device.model import FailureKind, Request
from jobrunner.device.operations.base import (
    AsyncOperation,
    AsyncState,
    Outcome,
    P,
    Settle,
    StatusQuery,
    file_hash_metric,
    for_another_operation,
    int32_metric,
    int_metric,
    millis_metric,
    operation_id_metric,
    optional_string,
    response_code,
    secret_string,
    text_metric,
    with_percent,
)
from jobrunner.device.payload import KuraPayload, Metric, present
from jobrunner.manifests.steps import (
    FileType,
    PackageDownload,
    PackageDownloadStep,
    PackageUninstall,
    PackageUninstallStep,
)

DOWNLOAD, INSTALL, UNINSTALL = "download", "install", "uninstall"
VERIFY = "verify"  # phase: downloaded with install false, the device checks the file's hash
DONE = ("COMPLETED", "ALREADY DONE")
SECRETS = frozenset({"dp.download.password"})


def notified_resource(resources: tuple[str, ...], payload: KuraPayload) -> str | None:
    """download / install / uninstall: the topic's resource, else (as Kapua) the metrics."""
    if resources and resources[0] in (DOWNLOAD, INSTALL, UNINSTALL):
        return resources[0]
    if payload.has("dp.download.status"):
        return DOWNLOAD
    if payload.has("dp.install.status"):
        return INSTALL
    if payload.has("dp.uninstall.progress") or payload.has("dp.uninstall.status"):
        return UNINSTALL
    return resources[0] if resources else None


def _status(payload: KuraPayload, resource: str) -> tuple[str | None, int | None, str]:
    """(status, percent, error message) of a DEPLOY-V2 notification or status reply."""
    return (
        text_metric(payload, f"dp.{resource}.status"),
        int_metric(payload, f"dp.{resource}.progress"),
        text_metric(payload, f"dp.{resource}.error.message") or "no reason given",
    )


class _DeployOperation(AsyncOperation[P]):
    """DEPLOY-V2's asynchronous operations: their app, and where a notification says which
    resource it is about (the topic, else the metrics, as Kapua reads them)."""

    @property
    def app_id(self) -> str:
        return self.settings.deploy_app

    def resource_of(self, resources: tuple[str, ...], payload: KuraPayload) -> str | None:
        return notified_resource(resources, payload)


class DownloadPackage(_DeployOperation[PackageDownload]):
    step = PackageDownloadStep
    failure_hints: ClassVar[dict[int, str]] = {
        500: "another download may be in progress, or the request was malformed",
    }

    @property
    def package(self) -> str:
        return f"{self.properties.name} {self.properties.version}"

    def request(self, operation_id: int = 0) -> Request:
        p = self.properties
        metrics: dict[str, Metric | None] = {
            "dp.uri": Metric.string(p.uri),
            "dp.name": Metric.string(p.name),
            "dp.version": Metric.string(p.version),
            "dp.download.protocol": Metric.string("HTTP"),
            "job.id": operation_id_metric(operation_id),
            "dp.install.system.update": Metric.boolean(p.file_type is FileType.EXECUTABLE_SCRIPT),
            "dp.install": Metric.boolean(p.install),
            "dp.reboot": Metric.boolean(p.reboot),
            "dp.reboot.delay": millis_metric("rebootDelay", p.reboot_delay),
            "dp.download.force": Metric.boolean(p.restart),
            "dp.download.block.size": int32_metric("blockSize", p.block_size),
            "dp.download.block.delay": millis_metric("blockDelay", p.block_delay),
            "dp.download.timeout": millis_metric("blockTimeout", p.block_timeout),
            "dp.download.notify.block.size": int32_metric("notifyBlockSize", p.notify_block_size),
            "dp.download.username": secret_string(p.username),
            "dp.download.password": secret_string(p.password),
            "dp.download.hash": file_hash_metric(p.file_hash),
            "dp.install.verifier.uri": optional_string(p.install_verifier_uri),
        }
        return Request(
            self.app_id,
            "EXEC",
            (DOWNLOAD,),
            present(metrics),
            operation_id=operation_id,
            secrets=SECRETS,
        )

    def awaited(self) -> tuple[str, str]:
        return f"the download of {self.package}", DOWNLOAD

    def resources(self) -> tuple[str, ...]:
        return DOWNLOAD, INSTALL

    def notified(self, state: AsyncState, resource: str, payload: KuraPayload) -> Outcome:
        if resource == DOWNLOAD:
            return self._download(state, payload)
        return self._install(state, payload)

    def _download(self, state: AsyncState, payload: KuraPayload) -> Outcome:
        """Kura's sequences: IN_PROGRESS..., COMPLETED (then, with install, the install
        notification); a failed transfer: FAILED (twice: the stream's, then the generic
        one); a file whose hash does not match, or a verifier that fails: COMPLETED, then
        FAILED. A FAILED or CANCELLED is final whatever came before it."""
        status, percent, error = _status(payload, DOWNLOAD)
        if status == "FAILED":
            after = (
                " (after the transfer completed: the file's hash did not match fileHash, or it"
                " could not be verified)"
                if state.phase != DOWNLOAD
                else ""
            )
            return Outcome.failed(
                f"download of {self.package} failed on the device: {error}{after}"
            )
        if status == "CANCELLED":
            return Outcome.failed(
                f"download of {self.package} was cancelled on the device", FailureKind.CANCELLED
            )
        if status not in ("IN_PROGRESS", *DONE):
            return Outcome.ignored(f"download notification with unknown status {status!r}", state)
        verifier = int_metric(payload, "dp.download.index") not in (None, 0)
        if state.phase != DOWNLOAD or verifier:
            what = "of the install verifier " if verifier else ""
            return Outcome.ignored(f"download notification {what}({status}) noted", state)
        if status == "IN_PROGRESS":
            now = with_percent(state, percent)
            return Outcome.progress(now, f"downloading {self.package}: {now.percent or 0}%")
        if self.properties.install:
            return Outcome.progress(
                with_percent(state, 0, INSTALL),
                f"downloaded {self.package}; waiting for the install notification",
            )
        if self.properties.file_hash is None or status == "ALREADY DONE":
            return Outcome.ok(f"downloaded {self.package}")
        return Outcome.progress(
            with_percent(state, 100, VERIFY),
            f"downloaded {self.package}; the device checks its hash",
            Settle(
                self.settings.hash_check_seconds,
                f"downloaded {self.package}; no hash failure reported in"
                f" {self.settings.hash_check_seconds:g}s",
            ),
        )

    def _install(self, state: AsyncState, payload: KuraPayload) -> Outcome:
        status, percent, error = _status(payload, INSTALL)
        if not self.properties.install:
            return Outcome.ignored("install notification, but install: false was asked", state)
        if status in DONE:  # also final when the download COMPLETED was missed (QoS 0)
            return Outcome.ok(f"installed {self.package}")
        if status == "FAILED":
            return Outcome.failed(f"install of {self.package} failed on the device: {error}")
        if status in ("IN_PROGRESS", "IDLE"):
            return Outcome.progress(
                with_percent(state, percent, INSTALL), f"installing {self.package}"
            )
        return Outcome.ignored(f"install notification with unknown status {status!r}", state)

    def status_queries(self, state: AsyncState) -> tuple[StatusQuery, ...]:
        return tuple(
            StatusQuery(name, Request(self.app_id, "GET", (name,)))
            for name in (DOWNLOAD, INSTALL, "packages")
        )

    def cancel(self, state: AsyncState) -> Request | None:
        """DEL download, while the transfer runs (Kura cannot stop an install)."""
        if state.phase != DOWNLOAD:
            return None
        return Request(self.app_id, "DEL", (DOWNLOAD,))

    def status(self, state: AsyncState, query: str, payload: KuraPayload) -> Outcome | None:
        p = self.properties
        reply = _ok(payload)
        if reply is None:
            return None
        if query == "packages":
            installed = installed_packages(reply)
            if p.install and installed is not None and (p.name, p.version) in installed:
                return Outcome.ok(
                    f"{self.package} is installed (the device's package list says so)"
                )
        elif query == DOWNLOAD:
            status, percent, _ = _status(reply, DOWNLOAD)
            if status == "IN_PROGRESS" and not for_another_operation(state, reply):
                now = with_percent(state, percent, DOWNLOAD)
                return Outcome.progress(now, f"still downloading {self.package}")
        elif query == INSTALL and text_metric(reply, "dp.install.status") == "IN_PROGRESS":
            name = text_metric(reply, "dp.name") or ""
            if name == p.name or name.startswith(f"{p.name}_"):
                return Outcome.progress(
                    with_percent(state, None, INSTALL), f"still installing {self.package}"
                )
        return None

    def recover(
        self, state: AsyncState, replies: Mapping[str, KuraPayload | None]
    ) -> Outcome | None:
        settled = super().recover(state, replies)
        if settled is not None:
            return settled
        answered = {name: _ok(replies.get(name)) for name in (DOWNLOAD, INSTALL, "packages")}
        if None in answered.values() or installed_packages(answered["packages"]) is None:
            return None  # a status query went unanswered: nothing is settled
        if self.properties.install and self.properties.file_type is FileType.EXECUTABLE_SCRIPT:
            # A system update is in no package list: Kura confirms it from its verifier
            # after the restart the script causes. Keep waiting for that notification.
            return None
        if self.properties.install:
            return Outcome.failed(
                f"{self.package} is not installed and the device is neither downloading nor"
                " installing it: the operation ended while its notification was missed; run"
                " the job again"
            )
        return Outcome.failed(
            f"the device is no longer downloading {self.package} and its outcome notification"
            " was missed; run the job again (a downloaded file is not fetched twice)"
        )


class UninstallPackage(_DeployOperation[PackageUninstall]):
    step = PackageUninstallStep

    @property
    def package(self) -> str:
        version = self.properties.version
        return self.properties.name + (f" {version}" if version else "")

    def request(self, operation_id: int = 0) -> Request:
        p = self.properties
        metrics: dict[str, Metric | None] = {
            "dp.name": Metric.string(p.name),
            "job.id": operation_id_metric(operation_id),
            "dp.version": optional_string(p.version),
            "dp.reboot": Metric.boolean(p.reboot),
            "dp.reboot.delay": millis_metric("rebootDelay", p.reboot_delay),
        }
        return Request(
            self.app_id, "EXEC", (UNINSTALL,), present(metrics), operation_id=operation_id
        )

    accepted_text = "device accepted {what}; waiting for its notification"

    def awaited(self) -> tuple[str, str]:
        return f"the uninstall of {self.package}", UNINSTALL

    def resources(self) -> tuple[str, ...]:
        return (UNINSTALL,)

    def notified(self, state: AsyncState, resource: str, payload: KuraPayload) -> Outcome:
        status, percent, error = _status(payload, UNINSTALL)
        if status in DONE:
            return Outcome.ok(f"uninstalled {self.package}")
        if status == "FAILED":
            return Outcome.failed(f"uninstall of {self.package} failed on the device: {error}")
        if status in ("IN_PROGRESS", "IDLE"):
            return Outcome.progress(with_percent(state, percent), f"uninstalling {self.package}")
        return Outcome.ignored(f"uninstall notification with unknown status {status!r}", state)

    def status_queries(self, state: AsyncState) -> tuple[StatusQuery, ...]:
        return (StatusQuery("packages", Request(self.app_id, "GET", ("packages",))),)

    def status(self, state: AsyncState, query: str, payload: KuraPayload) -> Outcome | None:
        installed = installed_packages(payload) if query == "packages" else None
        if installed is None:
            return None
        name, version = self.properties.name, self.properties.version
        if not any(n == name and (version is None or v == version) for n, v in installed):
            return Outcome.ok(
                f"{self.package} is no longer installed (learned from the device's package list)"
            )
        return Outcome.progress(
            state, f"{self.package} is still installed; waiting for the uninstall notification"
        )


def _ok(payload: KuraPayload | None) -> KuraPayload | None:
    return payload if payload is not None and response_code(payload) == 200 else None


def installed_packages(payload: KuraPayload | None) -> set[tuple[str, str]] | None:
    """(name, version) of each package of a GET packages reply; None if it cannot be read."""
    reply = _ok(payload)
    if reply is None:
        return None
    if not reply.body:
        return set()
    try:
        root = fromstring(reply.body)
    except (ET.ParseError, DefusedXmlException):
        return None
    found: set[tuple[str, str]] = set()
    for element in root.iter():
        if _local(element.tag) != "package":
            continue
        fields = {_local(child.tag): (child.text or "").strip() for child in element}
        if fields.get("name"):
            found.add((fields["name"], fields.get("version", "")))
    return found


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
