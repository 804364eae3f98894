"""The Kura request handlers of a simulated gateway, one module per app.

`HANDLERS[app_id][method]` is the handler of a request; an app a device lacks, or a method
an app does not implement, is decided by the dispatcher (`jobrunner.simulator.device`).
"""

from __future__ import annotations

from jobrunner.simulator.apps import (
    activity,
    asset,
    certificate,
    command,
    configuration,
    deploy,
    keystore,
)
from jobrunner.simulator.apps.base import Handler

HANDLERS: dict[str, dict[str, Handler]] = {
    command.APP_ID: command.HANDLERS,
    configuration.APP_ID: configuration.HANDLERS,
    deploy.APP_ID: deploy.HANDLERS,
    asset.APP_ID: asset.HANDLERS,
    keystore.APP_ID: keystore.HANDLERS,
    certificate.APP_ID: certificate.HANDLERS,
    activity.APP_ID: activity.HANDLERS,
}
"""Every app the simulator implements, by app id."""
