"""DEPLOY-V2: bundle start/stop and lists, downloads with their notification sequences,
installs, uninstalls and status snapshots (kura-protocol.md §4.3-4.5, §5)."""

from __future__ import annotations

from collections.abc import Callable
from xml.etree import ElementTree

from jobrunner.device.payload import Metric
from jobrunner.simulator.fleet import Fleet
from tests.simulator.conftest import Received, Requester

DOWNLOAD_TYPES = {
    "client.id": "STRING",
    "job.id": "INT64",
    "dp.download.size": "INT32",
    "dp.download.progress": "INT32",
    "dp.download.status": "STRING",
    "dp.download.index": "INT32",
}


def download_metrics(
    name: str = "org.eclipse.kura.driver.modbus",
    version: str = "1.2.0",
    job_id: int = 9_000_000_001,
    **extra: Metric,
) -> dict[str, Metric]:
    metrics = {
        "dp.uri": Metric.string(f"https://repo.example.com/{name}-{version}.dp"),
        "dp.name": Metric.string(name),
        "dp.version": Metric.string(version),
        "dp.download.protocol": Metric.string("HTTP"),
        "job.id": Metric.int64(job_id),
        "dp.install.system.update": Metric.boolean(False),
    }
    metrics.update({k.replace("_", "."): v for k, v in extra.items()})
    return metrics


def bundles(requester: Requester, device: str) -> dict[int, tuple[str, str, str]]:
    reply = requester.call(device, "DEPLOY-V2", "GET", "bundles")
    root = ElementTree.fromstring(reply.payload.body or b"")
    return {
        int(b.findtext("id") or -1): (
            b.findtext("name") or "",
            b.findtext("version") or "",
            b.findtext("state") or "",
        )
        for b in root.iter("bundle")
    }


def packages(requester: Requester, device: str) -> dict[str, str]:
    reply = requester.call(device, "DEPLOY-V2", "GET", "packages")
    root = ElementTree.fromstring(reply.payload.body or b"")
    return {p.findtext("name") or "": p.findtext("version") or "" for p in root.iter("package")}


def statuses(notes: list[Received], metric: str) -> list[str]:
    return [n.value(metric) for n in notes]


def test_stop_and_start_change_the_bundle_state(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    assert bundles(requester, "gw-0001")[42] == (
        "org.eclipse.kura.driver.modbus",
        "1.1.0",
        "ACTIVE",
    )
    assert requester.call("gw-0001", "DEPLOY-V2", "EXEC", "stop", "42").code == 200
    assert bundles(requester, "gw-0001")[42][2] == "RESOLVED"
    assert requester.call("gw-0001", "DEPLOY-V2", "EXEC", "start", "42").code == 200
    assert bundles(requester, "gw-0001")[42][2] == "ACTIVE"


def test_bad_bundle_ids_are_400_like_kura_not_404(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    for resources in (("start",), ("stop", "forty-two"), ("start", "4242"), ("start", "60")):
        reply = requester.call("gw-0001", "DEPLOY-V2", "EXEC", *resources)
        assert reply.code == 400, resources


def test_download_and_install_notify_in_kuras_sequence_with_kuras_types(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    reply = requester.call("gw-0001", "DEPLOY-V2", "EXEC", "download", metrics=download_metrics())
    assert reply.code == 200
    installs = requester.wait_notification("gw-0001", "install", "dp.install.status", {"COMPLETED"})
    downloads = requester.notifications("gw-0001", "download")
    assert statuses(downloads, "dp.download.status") == ["IN_PROGRESS"] * 4 + ["COMPLETED"]
    assert [n.value("dp.download.progress") for n in downloads] == [0, 25, 50, 75, 100]
    for note in downloads:
        assert {name: note.kind(name) for name in note.payload.metrics} == DOWNLOAD_TYPES
        assert note.topic == (
            f"$EDC/{requester.account}/{requester.client_id}/DEPLOY-V2/NOTIFY/gw-0001/download"
        )
        assert note.value("job.id") == 9_000_000_001 and note.value("client.id") == "gw-0001"
    (install,) = installs
    assert install.value("dp.install.progress") == 100
    assert install.value("dp.name") == "org.eclipse.kura.driver.modbus_1.2.0.dp"
    assert install.kind("job.id") == "INT64" and install.kind("dp.install.progress") == "INT32"
    assert packages(requester, "gw-0001")["org.eclipse.kura.driver.modbus"] == "1.2.0"
    assert bundles(requester, "gw-0001")[42] == (
        "org.eclipse.kura.driver.modbus",
        "1.2.0",
        "ACTIVE",
    )


def test_notify_block_size_sets_the_progress_steps(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    metrics = download_metrics(dp_download_notify_block_size=Metric.int32(65536))
    requester.call("gw-0001", "DEPLOY-V2", "EXEC", "download", metrics=metrics)
    notes = requester.wait_notification("gw-0001", "download", "dp.download.status", {"COMPLETED"})
    assert [n.value("dp.download.progress") for n in notes] == [0, 50, 100]  # 128 KiB / 64 KiB


def test_a_second_download_while_one_is_pending_is_500_in_progress(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    requester.call("gw-0001", "DEPLOY-V2", "EXEC", "download", metrics=download_metrics())
    status = requester.call("gw-0001", "DEPLOY-V2", "GET", "download")
    assert status.value("dp.download.status") == "IN_PROGRESS"
    assert status.value("job.id") == 9_000_000_001 and status.kind("dp.download.size") == "INT32"
    busy = requester.call(
        "gw-0001", "DEPLOY-V2", "EXEC", "download", metrics=download_metrics("other", "1.0", 5)
    )
    assert busy.code == 500
    assert busy.value("download.status") == "IN_PROGRESS"
    assert busy.payload.body == b"Another resource is already in download"
    requester.wait_notification("gw-0001", "install", "dp.install.status", {"COMPLETED"})
    done = requester.call("gw-0001", "DEPLOY-V2", "GET", "download")
    assert (
        done.value("dp.download.status") == "ALREADY DONE" and "job.id" not in done.payload.metrics
    )
    assert (
        requester.call("gw-0001", "DEPLOY-V2", "GET", "install").value("dp.install.status")
        == "IDLE"
    )


def test_missing_or_mistyped_download_metrics_are_400_malformed(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    for name in (
        "dp.uri",
        "dp.name",
        "dp.version",
        "dp.download.protocol",
        "job.id",
        "dp.install.system.update",
    ):
        metrics = download_metrics()
        del metrics[name]
        reply = requester.call("gw-0001", "DEPLOY-V2", "EXEC", "download", metrics=metrics)
        assert reply.code == 400, name
        assert "malformed request" in reply.value("response.exception.message")
    for name, wrong in (
        ("job.id", Metric.int32(5)),
        ("dp.install", Metric.string("true")),
        ("dp.reboot.delay", Metric.int64(1000)),
        ("dp.download.block.size", Metric.int64(1024)),
    ):
        metrics = download_metrics()
        metrics[name] = wrong
        assert (
            requester.call("gw-0001", "DEPLOY-V2", "EXEC", "download", metrics=metrics).code == 400
        )


def test_download_without_install_keeps_the_file_for_exec_install(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    metrics = download_metrics("com.example.tool", "3.0.0", 77, dp_install=Metric.boolean(False))
    requester.call("gw-0001", "DEPLOY-V2", "EXEC", "download", metrics=metrics)
    requester.wait_notification("gw-0001", "download", "dp.download.status", {"COMPLETED"})
    assert "com.example.tool" not in packages(requester, "gw-0001")
    assert requester.notifications("gw-0001", "install") == []
    install = {
        "dp.name": Metric.string("com.example.tool"),
        "dp.version": Metric.string("3.0.0"),
        "job.id": Metric.int64(78),
        "dp.install.system.update": Metric.boolean(False),
    }
    assert requester.call("gw-0001", "DEPLOY-V2", "EXEC", "install", metrics=install).code == 200
    (note,) = requester.wait_notification("gw-0001", "install", "dp.install.status", {"COMPLETED"})
    assert note.value("job.id") == 78
    assert packages(requester, "gw-0001")["com.example.tool"] == "3.0.0"
    # Installed: the file is gone, a second install is refused.
    assert requester.call("gw-0001", "DEPLOY-V2", "EXEC", "install", metrics=install).code == 400


def test_a_file_downloaded_before_completes_at_once_unless_forced(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    keep = download_metrics("com.example.tool", "3.0.0", 1, dp_install=Metric.boolean(False))
    requester.call("gw-0001", "DEPLOY-V2", "EXEC", "download", metrics=keep)
    requester.wait_notification("gw-0001", "download", "dp.download.status", {"COMPLETED"})
    again = download_metrics("com.example.tool", "3.0.0", 2, dp_install=Metric.boolean(False))
    requester.call("gw-0001", "DEPLOY-V2", "EXEC", "download", metrics=again)
    notes = requester.wait_notification(
        "gw-0001", "download", "dp.download.status", {"COMPLETED"}, 2
    )
    second = [n for n in notes if n.value("job.id") == 2]
    assert [(n.value("dp.download.size"), n.value("dp.download.progress")) for n in second] == [
        (0, 100)
    ]
    assert "dp.download.index" not in second[0].payload.metrics


def test_uninstall_replies_then_notifies_and_removes_the_package(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    metrics = {
        "dp.name": Metric.string("com.acme.monitoring.agent"),
        "job.id": Metric.int64(31),
        "dp.version": Metric.string("2.3.1"),
    }
    assert requester.call("gw-0001", "DEPLOY-V2", "EXEC", "uninstall", metrics=metrics).code == 200
    (note,) = requester.wait_notification(
        "gw-0001", "uninstall", "dp.uninstall.status", {"COMPLETED"}
    )
    assert (
        note.value("dp.uninstall.progress") == 100 and note.kind("dp.uninstall.progress") == "INT32"
    )
    assert note.value("dp.name") == "com.acme.monitoring.agent" and note.kind("job.id") == "INT64"
    assert "com.acme.monitoring.agent" not in packages(requester, "gw-0001")
    assert 57 not in bundles(requester, "gw-0001")
    # Not installed any more: Kura still reports COMPLETED.
    metrics["job.id"] = Metric.int64(32)
    requester.call("gw-0001", "DEPLOY-V2", "EXEC", "uninstall", metrics=metrics)
    requester.wait_notification("gw-0001", "uninstall", "dp.uninstall.status", {"COMPLETED"}, 2)
    bad = requester.call(
        "gw-0001", "DEPLOY-V2", "EXEC", "uninstall", metrics={"dp.name": Metric.string("x")}
    )
    assert bad.code == 400


def test_cancel_stops_the_download_with_a_cancelled_notification(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    requester.call("gw-0001", "DEPLOY-V2", "EXEC", "download", metrics=download_metrics())
    assert requester.call("gw-0001", "DEPLOY-V2", "DEL", "download").code == 200
    notes = requester.wait_notification("gw-0001", "download", "dp.download.status", {"CANCELLED"})
    # A progress the download's timer fired as the cancel came may be published after it.
    (cancelled,) = [n for n in notes if n.value("dp.download.status") == "CANCELLED"]
    assert cancelled.value("dp.download.error.message") == "Download cancelled"
    ok = requester.call(
        "gw-0001", "DEPLOY-V2", "EXEC", "download", metrics=download_metrics("next", "1.0", 3)
    )
    assert ok.code == 200


def test_a_system_update_reboots_and_confirms_the_install_after_its_new_birth(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    requester.wait_lifecycle("gw-0001", "BIRTH")
    metrics = download_metrics("update", "2.0", 55)
    metrics["dp.install.system.update"] = Metric.boolean(True)
    assert requester.call("gw-0001", "DEPLOY-V2", "EXEC", "download", metrics=metrics).code == 200
    (note,) = requester.wait_notification("gw-0001", "install", "dp.install.status", {"COMPLETED"})
    assert note.value("dp.name") == "update_2.0.sh"
    births = requester.lifecycle("gw-0001", "BIRTH")
    assert len(requester.lifecycle("gw-0001", "DC")) == 1 and len(births) == 2
    assert births[-1].payload.timestamp is not None and note.payload.timestamp is not None
    assert births[-1].payload.timestamp <= note.payload.timestamp
