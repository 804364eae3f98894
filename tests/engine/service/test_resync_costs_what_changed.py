"""A reconcile of the daemon reads the manifests again only when a file changed (or when
asked, or once an hour): a periodic resync or a takeover costs the plan, not the parsing of
every manifest again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobrunner.engine.service import daemon as daemon_module
from jobrunner.engine.service.daemon import Daemon
from jobrunner.manifests import ManifestSet

from ..conftest import FakeClock, memory_runner

JOB = (
    "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: check, scope: acme}\n"
    "spec:\n  targets: {devices: [gw-1]}\n  steps:\n"
    "    - {name: stop, definition: Bundle Stop, properties: {bundleId: 42}}\n"
)


def test_the_manifests_are_read_again_only_when_a_file_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "jobs.d").mkdir()
    manifest = tmp_path / "jobs.d" / "check.yaml"
    manifest.write_text(JOB)
    runner, _ = memory_runner(tmp_path, FakeClock(), lambda sent: None)
    reads: list[ManifestSet] = []
    load = runner.load

    def counted() -> ManifestSet:
        reads.append(load())
        return reads[-1]

    monkeypatch.setattr(runner, "load", counted)
    daemon = Daemon(runner.config)
    with runner:
        daemon.runner = runner
        daemon.reconcile("start")
        daemon.reconcile("periodic resync")
        daemon.reconcile("change in the jobs directory")  # an event, but no file changed
        assert len(reads) == 1

        manifest.write_text(JOB.replace("42", "43") + "\n")
        stat = manifest.stat()
        os.utime(manifest, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        daemon.reconcile("periodic resync")
        assert len(reads) == 2, "a changed file is read again"

        daemon.reconcile("requested from the command line")
        assert len(reads) == 3, "an operator's reconcile reads every file"

        monkeypatch.setattr(daemon_module, "RELOAD", 0.0)
        daemon.reconcile("periodic resync")
        assert len(reads) == 4, "now and then, whatever"
        daemon.runner = None


DEVICES = (
    "apiVersion: jobrunner/v1\nkind: DeviceList\nmetadata: {scope: acme}\n"
    "devices:\n  - {clientId: gw-1}\n  - {clientId: gw-2}\n"
)
EVERY_DEVICE = JOB.replace("{devices: [gw-1]}", "{all: true}")


def test_a_resync_of_the_same_manifests_still_sees_a_device_that_connected_meanwhile(
    tmp_path: Path,
) -> None:
    """The devices' tags are made once for the manifests read last, and again when the
    registry gained a device (one connected without being declared)."""
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "devices.yaml").write_text(DEVICES)
    (tmp_path / "jobs.d" / "check.yaml").write_text(EVERY_DEVICE)
    runner, _ = memory_runner(tmp_path, FakeClock(), lambda sent: None)
    with runner:
        manifests = runner.load()
        assert runner.plan(manifests).jobs[0].targets == ["gw-1", "gw-2"]
        assert runner.plan(manifests).jobs[0].targets == ["gw-1", "gw-2"]
        runner.registry.scope("acme").connected("gw-3")  # not declared: discovered
        assert runner.plan(manifests).jobs[0].targets == ["gw-1", "gw-2", "gw-3"]

        (tmp_path / "jobs.d" / "devices.yaml").write_text(DEVICES.replace("gw-2", "gw-4"))
        fresh = runner.load()
        assert runner.plan(fresh).jobs[0].targets == ["gw-1", "gw-3", "gw-4"]
        assert not runner.registry.scope("acme").get("gw-2"), "never seen, no longer declared"
