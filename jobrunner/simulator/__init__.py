"""A simulated Kura fleet, and the MQTT broker it can bring along, for demos, tests and benchmarks.

    from jobrunner.simulator import Fleet, FleetConfig, FaultPlan

`Fleet` (module `fleet`) runs the devices, `FleetConfig` (`config`) describes them,
`FaultPlan` (`faults`; command-line form in `faultspec`) makes some of them misbehave.
The broker helpers live in `broker` (and `embedded`).

The names are imported on first use, so that `jobrunner.simulator.broker` (which the test
fixtures and the embedded broker's child process import) stays free of paho and protobuf.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobrunner.simulator.config import DeviceProfile, FleetConfig, Timing
    from jobrunner.simulator.faults import FaultPlan
    from jobrunner.simulator.fleet import Fleet, FleetError

__all__ = ["DeviceProfile", "FaultPlan", "Fleet", "FleetConfig", "FleetError", "Timing"]

_HOMES = {
    "DeviceProfile": "config",
    "FleetConfig": "config",
    "Timing": "config",
    "FaultPlan": "faults",
    "Fleet": "fleet",
    "FleetError": "fleet",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
