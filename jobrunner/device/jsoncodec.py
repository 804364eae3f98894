"""Kura's `simple-json` payload encoding (CloudService `payload.encoding = simple-json`).

`{"sentOn": ms, "position": {...}, "metrics": {name: value}, "body": base64}`. JSON carries
no metric types: on reading, integral numbers become INT64 and others DOUBLE, as Kura's own
decoder does; on writing, the value's JSON form is all that is sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import fields
from typing import Any

from jobrunner.device.payload import KuraPayload, Metric, MetricType, Position, gunzip_if_gzip
from jobrunner.errors import PayloadError

_TOP_LEVEL = {"senton", "position", "metrics", "body"}
_POSITION_NAMES = {f.name.lower(): f.name for f in fields(Position)}


class JsonCodec:
    """`simple-json` payload encoding."""

    name = "simple-json"

    def encode(self, payload: KuraPayload) -> bytes:
        document: dict[str, Any] = {}
        if payload.timestamp is not None:
            document["sentOn"] = payload.timestamp
        if payload.position is not None:
            document["position"] = {
                f.name: getattr(payload.position, f.name)
                for f in fields(Position)
                if getattr(payload.position, f.name) is not None
            }
        metrics: dict[str, Any] = {}
        for name, metric in payload.metrics.items():
            value = metric.value
            if isinstance(value, bytes):
                metrics[name] = base64.b64encode(value).decode("ascii")
            elif isinstance(value, float) and not math.isfinite(value):
                continue  # Kura drops non-finite numbers: JSON cannot carry them
            else:
                metrics[name] = value
        document["metrics"] = metrics
        if payload.body is not None:
            document["body"] = base64.b64encode(payload.body).decode("ascii")
        return json.dumps(document, separators=(",", ":")).encode("utf-8")

    def decode(self, data: bytes) -> KuraPayload:
        """Read a JSON payload; a document of unknown shape becomes the body, as in Kura."""
        raw = gunzip_if_gzip(data)
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError,
            # integers of more than 4300 digits; RecursionError: nesting deeper than the stack
            raise PayloadError(f"not a simple-json payload ({error})") from None
        if not isinstance(document, dict) or not {k.lower() for k in document} <= _TOP_LEVEL:
            return KuraPayload(body=raw)
        keys = {k.lower(): v for k, v in document.items()}
        metrics = keys.get("metrics") or {}
        if not isinstance(metrics, dict):
            raise PayloadError("simple-json 'metrics' is not an object")
        return KuraPayload(
            metrics={name: _metric(name, value) for name, value in metrics.items()},
            body=_body(keys.get("body")),
            timestamp=_integer(keys.get("senton"), "sentOn"),
            position=_position(keys.get("position")),
        )


def _metric(name: str, value: Any) -> Metric:
    if isinstance(value, bool):
        return Metric(MetricType.BOOL, value)
    if isinstance(value, int):
        return Metric(MetricType.INT64, value)
    if isinstance(value, float):
        if value.is_integer() and -(2**63) <= value < 2**63:
            return Metric(MetricType.INT64, int(value))
        return Metric(MetricType.DOUBLE, value)
    if isinstance(value, str):
        return Metric(MetricType.STRING, value)
    raise PayloadError(f"simple-json metric '{name}' is {type(value).__name__}, not a scalar")


def _body(value: Any) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError("simple-json 'body' is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise PayloadError("simple-json 'body' is not base64 text") from None


def _integer(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"simple-json '{name}' is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise PayloadError(f"simple-json '{name}' is {value}, not a number of milliseconds")
    return int(value)


def _position(value: Any) -> Position | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PayloadError("simple-json 'position' is not an object")
    known = {
        _POSITION_NAMES[k.lower()]: v for k, v in value.items() if k.lower() in _POSITION_NAMES
    }
    if "latitude" not in known or "longitude" not in known:
        raise PayloadError("simple-json 'position' lacks latitude or longitude")
    try:
        return Position(**known)
    except TypeError as error:
        raise PayloadError(f"simple-json 'position': {error}") from None
