"""Asset Write: `ASSET-V1 EXEC/write` with a JSON body (kura-protocol.md §4.6).

The body lists assets and channels with every value as a JSON string (BYTE_ARRAY as base64).
Kura replies 200 even when channels fail: the reply body names each channel's error, and a
step whose channel writes failed fails, saying which ones.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from jobrunner.device.model import Request
from jobrunner.device.operations.base import Operation, Outcome, json_body, shorten
from jobrunner.device.payload import KuraPayload
from jobrunner.manifests.steps import AssetWrite, AssetWriteStep, ScalarValue


def channel_text(kind: str, value: ScalarValue) -> str:
    """A channel value as the string Kura's write parser reads for `kind`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind in ("DOUBLE", "FLOAT") and isinstance(value, int):
        return repr(float(value))
    if isinstance(value, float):
        return repr(value)
    return str(value)  # STRING, INTEGER, LONG; BYTE_ARRAY is already base64 text


class WriteAssets(Operation[AssetWrite]):
    step = AssetWriteStep
    failure_hints: ClassVar[dict[int, str]] = {400: "the device could not read the write request"}

    @property
    def app_id(self) -> str:
        return self.settings.asset_app

    def document(self) -> list[dict[str, Any]]:
        return [
            {
                "name": asset.name,
                "channels": [
                    {"name": c.name, "type": c.type, "value": channel_text(c.type, c.value)}
                    for c in asset.channels
                ],
            }
            for asset in self.properties.assets
        ]

    def request(self, operation_id: int = 0) -> Request:
        return Request(self.app_id, "EXEC", ("write",), body=json_body(self.document()))

    def succeeded(self, payload: KuraPayload) -> Outcome:
        asked = sum(len(a.channels) for a in self.properties.assets)
        wrote = f"wrote {asked} channel(s) of {len(self.properties.assets)} asset(s)"
        try:
            assets = json.loads(payload.body or b"")
        except (UnicodeDecodeError, json.JSONDecodeError):
            return Outcome.ok(f"{wrote} (the reply body could not be read to confirm)")
        errors = list(_errors(assets))
        if errors:
            return Outcome.failed(
                f"device replied 200 but {len(errors)} write(s) failed: "
                + shorten("; ".join(errors), 400)
            )
        return Outcome.ok(wrote)


def _errors(assets: object) -> list[str]:
    """`asset 'a': error` / `asset 'a' channel 'c': error` of a write reply."""
    found: list[str] = []
    for asset in assets if isinstance(assets, list) else []:
        if not isinstance(asset, dict):
            continue
        name = asset.get("name")
        if asset.get("error"):
            found.append(f"asset {name!r}: {asset['error']}")
        channels = asset.get("channels")
        for channel in channels if isinstance(channels, list) else []:
            if isinstance(channel, dict) and channel.get("error"):
                found.append(f"asset {name!r} channel {channel.get('name')!r}: {channel['error']}")
    return found
