"""ASSET-V1: `EXEC write`, `EXEC read` and `GET assets`, as Kura's AssetCloudlet.

The body is a JSON array `[{"name": asset, "channels": [{"name", "type", "value"}]}]`,
values always JSON strings (BYTE_ARRAY as base64). The reply is 200 with one result per
asset: per channel `name`, `timestamp` and either `type` + `value` or `error`; an unknown
asset is `{"name": …, "error": "Asset not found"}`. Per-channel failures do not change the
200. A body that is not such JSON is 400; a read without a body reads every asset.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from jobrunner.simulator.apps.base import Call, Handler, KuraError, Reply, json_body, json_reply
from jobrunner.simulator.catalog import Channel

APP_ID = "ASSET-V1"
TYPES = ("BOOLEAN", "BYTE_ARRAY", "DOUBLE", "INTEGER", "LONG", "FLOAT", "STRING")
_RANGES = {"INTEGER": (-(2**31), 2**31 - 1), "LONG": (-(2**63), 2**63 - 1)}


def _normalize(kind: str, value: str) -> str:
    """The value as the device stores it; ValueError when it does not parse as `kind`."""
    if kind == "BOOLEAN":
        if value.strip().lower() not in ("true", "false"):
            raise ValueError(f"{value!r} is not a BOOLEAN")
        return value.strip().lower()
    if kind in _RANGES:
        number = int(value)
        low, high = _RANGES[kind]
        if not low <= number <= high:
            raise ValueError(f"{value} does not fit in {kind}")
        return str(number)
    if kind in ("DOUBLE", "FLOAT"):
        return repr(float(value))
    if kind == "BYTE_ARRAY":
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError(f"{value!r} is not base64") from None
    return value


def _request(call: Call, optional: bool) -> list[dict[str, Any]] | None:
    if optional and not call.request.payload.body:
        return None
    document = json_body(call.request.payload)
    if not isinstance(document, list) or not all(
        isinstance(a, dict) and isinstance(a.get("name"), str) for a in document
    ):
        raise KuraError(400, "expected a JSON array of {name, channels} objects")
    for asset in document:
        channels = asset.get("channels", [])
        if not isinstance(channels, list) or not all(
            isinstance(c, dict) and isinstance(c.get("name"), str) for c in channels
        ):
            raise KuraError(400, f"asset {asset['name']!r}: channels must be named objects")
    return document


def _one_resource(call: Call) -> str:
    if len(call.request.resources) != 1:
        raise KuraError(400, "expected exactly one resource: read or write")
    return call.request.resources[0]


def execute(call: Call) -> Reply:
    """EXEC write|read."""
    resource = _one_resource(call)
    if resource == "write":
        return _write(call)
    if resource == "read":
        return _read(call)
    raise KuraError(400, f"unknown resource {resource!r}; expected read or write")


def _write(call: Call) -> Reply:
    requested = _request(call, optional=False) or []
    state = call.device.state
    now = int(time.time() * 1000)
    results: list[dict[str, Any]] = []
    for asset in requested:
        channels = state.assets.get(asset["name"])
        if channels is None:
            results.append({"name": asset["name"], "error": "Asset not found"})
            continue
        outcome: list[dict[str, Any]] = []
        for wanted in asset.get("channels", []):
            name = wanted["name"]
            kind = str(wanted.get("type", "")).upper()
            channel = channels.get(name)
            entry: dict[str, Any] = {"name": name, "timestamp": now}
            try:
                if channel is None:
                    raise ValueError("Channel not found")
                if channel.mode == "READ":
                    raise ValueError("Channel is not writable")
                if kind not in TYPES:
                    raise ValueError(f"unknown type {wanted.get('type')!r}")
                value = _normalize(kind, str(wanted.get("value", "")))
            except ValueError as error:
                entry["error"] = str(error)
            else:
                state.set_channel(
                    asset["name"], Channel(name, kind, value, channel.mode, channel.unit)
                )
                entry.update(type=kind, value=value)
            outcome.append(entry)
        results.append({"name": asset["name"], "channels": outcome})
    return json_reply(results)


def _read(call: Call) -> Reply:
    requested = _request(call, optional=True)
    state = call.device.state
    now = int(time.time() * 1000)
    if requested is None:
        requested = [{"name": name} for name in state.assets]
    results: list[dict[str, Any]] = []
    for asset in requested:
        channels = state.assets.get(asset["name"])
        if channels is None:
            results.append({"name": asset["name"], "error": "Asset not found"})
            continue
        names = [c["name"] for c in asset.get("channels", [])] or list(channels)
        outcome: list[dict[str, Any]] = []
        for name in names:
            channel = channels.get(name)
            if channel is None or channel.mode == "WRITE":
                error = "Channel not found" if channel is None else "Channel is not readable"
                outcome.append({"name": name, "timestamp": now, "error": error})
            else:
                outcome.append(
                    {"name": name, "timestamp": now, "type": channel.type, "value": channel.value}
                )
        results.append({"name": asset["name"], "channels": outcome})
    return json_reply(results)


def get(call: Call) -> Reply:
    """GET assets: each asset's channels with their type and mode."""
    if _one_resource(call) != "assets":
        raise KuraError(404, f"resource {call.request.resources[0]!r} not found")
    state = call.device.state
    return json_reply(
        [
            {
                "name": name,
                "channels": [
                    {"name": c.name, "type": c.type, "mode": c.mode} for c in channels.values()
                ],
            }
            for name, channels in state.assets.items()
        ]
    )


HANDLERS: dict[str, Handler] = {"EXEC": execute, "GET": get}
