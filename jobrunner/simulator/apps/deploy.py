"""DEPLOY-V2, the synchronous part: bundle and package lists, bundle start/stop, and the
status snapshots of the download and install in progress (Kura's CloudDeploymentHandlerV2).

`EXEC start|stop/{id}` answers 400 for a missing, non-numeric or unknown id and for a bundle
that cannot start (real Kura; the Kapua simulator answers 404 instead). `GET download`
reports the pending download (size, progress, status, `job.id`) or `ALREADY DONE`; `GET
install` reports `IN_PROGRESS` with the package, or `IDLE`. The asynchronous operations are
in `apps.packages`.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from jobrunner.device.payload import Metric, MetricType
from jobrunner.simulator.apps import packages
from jobrunner.simulator.apps.base import Call, Handler, KuraError, Reply
from jobrunner.simulator.catalog import Bundle, BundleState

APP_ID = "DEPLOY-V2"
_XML = '<?xml version="1.0" encoding="UTF-8"?>'


def _first(call: Call) -> str:
    if not call.request.resources:
        raise KuraError(400, "expected a resource, found none")
    return call.request.resources[0]


def get(call: Call) -> Reply:
    """GET bundles|packages|download|install."""
    resource = _first(call)
    state = call.device.state
    if resource == "bundles":
        items = "".join(
            f"<bundle><name>{escape(b.name)}</name><version>{escape(b.version)}</version>"
            f"<id>{b.id}</id><state>{b.state}</state></bundle>"
            for b in sorted(state.bundles.values(), key=lambda b: b.id)
        )
        return Reply(body=f"{_XML}<bundles>{items}</bundles>".encode())
    if resource == "packages":
        parts = []
        for package in state.packages.values():
            bundles = "".join(
                f"<bundle><name>{escape(b.name)}</name><version>{escape(b.version)}</version></bundle>"
                for b in (state.bundles.get(i) for i in package.bundle_ids)
                if b is not None
            )
            parts.append(
                f"<package><name>{escape(package.name)}</name>"
                f"<version>{escape(package.version)}</version><bundles>{bundles}</bundles></package>"
            )
        return Reply(body=f"{_XML}<packages>{''.join(parts)}</packages>".encode())
    if resource == "download":
        return _download_status(call)
    if resource == "install":
        return _install_status(call)
    raise KuraError(404, f"resource {resource!r} not found")


def _download_status(call: Call) -> Reply:
    pending = call.device.state.download
    if pending is None or pending.installing:
        return Reply(
            metrics={
                "dp.download.size": Metric(MetricType.INT32, 0),
                "dp.download.progress": Metric(MetricType.INT32, 100),
                "dp.download.status": Metric(MetricType.STRING, "ALREADY DONE"),
            }
        )
    return Reply(
        metrics={
            "dp.download.size": Metric(MetricType.INT32, pending.size),
            "dp.download.progress": Metric(MetricType.INT32, pending.progress),
            "dp.download.status": Metric(MetricType.STRING, pending.status),
            "job.id": Metric(MetricType.INT64, pending.job_id),
        }
    )


def _install_status(call: Call) -> Reply:
    installing = call.device.state.install
    if installing is None:
        return Reply(metrics={"dp.install.status": Metric(MetricType.STRING, "IDLE")})
    return Reply(
        metrics={
            "dp.install.status": Metric(MetricType.STRING, "IN_PROGRESS"),
            "dp.name": Metric(MetricType.STRING, installing.name),
            "dp.version": Metric(MetricType.STRING, installing.version),
        }
    )


def execute(call: Call) -> Reply | None:
    """EXEC start|stop/{id}, download, install, uninstall."""
    resource = _first(call)
    if resource in ("start", "stop"):
        return _start_stop(call, start=resource == "start")
    if resource == "download":
        return packages.download(call)
    if resource == "install":
        return packages.install(call)
    if resource == "uninstall":
        return packages.uninstall(call)
    raise KuraError(404, f"resource {resource!r} not found")


def delete(call: Call) -> Reply:
    """DEL download (cancel)."""
    if _first(call) != "download":
        raise KuraError(404, f"resource {_first(call)!r} not found")
    return packages.cancel(call)


def _start_stop(call: Call, start: bool) -> Reply:
    resources = call.request.resources
    verb = "start" if start else "stop"
    if len(resources) < 2:
        raise KuraError(400, f"EXEC {verb}: no bundle id")
    if not resources[1].isdigit():
        raise KuraError(400, f"EXEC {verb}: bad bundle id {resources[1]!r}")
    state = call.device.state
    bundle = state.bundles.get(int(resources[1]))
    if bundle is None:
        raise KuraError(400, f"bundle {resources[1]} not found")
    new_state: BundleState
    if start:
        if not bundle.startable:
            raise KuraError(400, f"bundle {bundle.id} ({bundle.name}) cannot be resolved")
        new_state = "ACTIVE"
    else:
        if bundle.id == 0:
            raise KuraError(400, "the system bundle cannot be stopped remotely")
        new_state = "RESOLVED" if bundle.startable else bundle.state
    if bundle.state != new_state:
        state.set_bundle(
            Bundle(bundle.id, bundle.name, bundle.version, new_state, bundle.startable)
        )
    return Reply()


HANDLERS: dict[str, Handler] = {"GET": get, "EXEC": execute, "DEL": delete}
