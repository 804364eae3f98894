"""KuraPayload: the message body of every Kura request, reply, notification and birth.

The protobuf schema (proto2, package `kuradatatypes`) is built at import time from its
descriptor, so the `protobuf` runtime does the wire work without generated code that would
pin a protobuf version. Field numbers are those of Kura's `kurapayload.proto`
(`../shared/kura-protocol.md` §1.1). Metric types matter: a device casts each metric to a
Java type, so every metric is built with an explicit type (`Metric.int32(200)`).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from jobrunner.errors import PayloadError
from jobrunner.immutable import immutable

MAX_DECOMPRESSED_BYTES = 16 * 1024 * 1024
"""Largest payload accepted after gunzip: a device's biggest reply (a configuration dump)
is well under 1 MB; anything near this cap is a gzip bomb."""

GZIP_MAGIC = b"\x1f\x8b"


class MetricType(IntEnum):
    """Kura's ValueType enum."""

    DOUBLE = 0
    FLOAT = 1
    INT64 = 2
    INT32 = 3
    BOOL = 4
    STRING = 5
    BYTES = 6


MetricValue = float | int | bool | str | bytes

_VALUE_FIELD = {
    MetricType.DOUBLE: "double_value",
    MetricType.FLOAT: "float_value",
    MetricType.INT64: "long_value",
    MetricType.INT32: "int_value",
    MetricType.BOOL: "bool_value",
    MetricType.STRING: "string_value",
    MetricType.BYTES: "bytes_value",
}
_KINDS = {kind.value: (kind, name) for kind, name in _VALUE_FIELD.items()}
"""A metric's wire type number to its type and value field, without an enum call per metric."""
_INT32_RANGE = range(-(2**31), 2**31)
_INT64_RANGE = range(-(2**63), 2**63)


@immutable
class Metric:
    """A typed metric value, e.g. `Metric.int64(job_id)`."""

    type: MetricType
    value: MetricValue

    @staticmethod
    def string(value: str) -> Metric:
        return Metric(MetricType.STRING, value)

    @staticmethod
    def int32(value: int) -> Metric:
        if value not in _INT32_RANGE:
            raise PayloadError(f"{value} does not fit an INT32 metric")
        return Metric(MetricType.INT32, value)

    @staticmethod
    def int64(value: int) -> Metric:
        if value not in _INT64_RANGE:
            raise PayloadError(f"{value} does not fit an INT64 metric")
        return Metric(MetricType.INT64, value)

    @staticmethod
    def boolean(value: bool) -> Metric:
        return Metric(MetricType.BOOL, value)

    @staticmethod
    def double(value: float) -> Metric:
        return Metric(MetricType.DOUBLE, value)

    @staticmethod
    def float32(value: float) -> Metric:
        return Metric(MetricType.FLOAT, value)

    @staticmethod
    def raw(value: bytes) -> Metric:
        return Metric(MetricType.BYTES, value)


def present(metrics: Mapping[str, Metric | None]) -> dict[str, Metric]:
    """The metrics that have a value, in order: None stands for a metric left out, as Kura
    leaves out what it does not set (it never sends null)."""
    return {name: metric for name, metric in metrics.items() if metric is not None}


@dataclass(frozen=True, slots=True)
class Position:
    latitude: float
    longitude: float
    altitude: float | None = None
    precision: float | None = None
    heading: float | None = None
    speed: float | None = None
    timestamp: int | None = None
    satellites: int | None = None
    status: int | None = None


@dataclass(slots=True)
class KuraPayload:
    """Metrics (in order), an optional body, timestamp (epoch ms) and position."""

    metrics: dict[str, Metric] = field(default_factory=dict)
    body: bytes | None = None
    timestamp: int | None = None
    position: Position | None = None

    @classmethod
    def of(
        cls,
        metrics: Mapping[str, Metric | None],
        body: bytes | None = None,
        timestamp: int | None = None,
    ) -> KuraPayload:
        """A payload from metrics; None values are left out, as Kura does (never sent null)."""
        return cls(metrics=present(metrics), body=body, timestamp=timestamp)

    def has(self, name: str) -> bool:
        return name in self.metrics

    def string(self, name: str, default: str | None = None) -> str | None:
        """A STRING metric's value; PayloadError if it has another type."""
        metric = self.metrics.get(name)
        if metric is None:
            return default
        if metric.type is not MetricType.STRING:
            raise PayloadError(f"metric '{name}' is {metric.type.name}, expected STRING")
        assert isinstance(metric.value, str)
        return metric.value

    def integer(self, name: str, default: int | None = None) -> int | None:
        """An INT32 or INT64 metric's value (either is accepted on reading)."""
        metric = self.metrics.get(name)
        if metric is None:
            return default
        if metric.type not in (MetricType.INT32, MetricType.INT64):
            raise PayloadError(f"metric '{name}' is {metric.type.name}, expected an integer")
        assert isinstance(metric.value, int)
        return metric.value

    def boolean(self, name: str, default: bool | None = None) -> bool | None:
        metric = self.metrics.get(name)
        if metric is None:
            return default
        if metric.type is not MetricType.BOOL:
            raise PayloadError(f"metric '{name}' is {metric.type.name}, expected BOOL")
        assert isinstance(metric.value, bool)
        return metric.value

    def text(self, name: str) -> str | None:
        """Any metric as display text (for logs), None when absent."""
        metric = self.metrics.get(name)
        if metric is None:
            return None
        if isinstance(metric.value, bytes):
            return f"<{len(metric.value)} bytes>"
        return str(metric.value)


# --- protobuf schema, built from its descriptor -------------------------------------------------


def _schema() -> type[message.Message]:
    FD = descriptor_pb2.FieldDescriptorProto  # noqa: N806 - the protobuf type's own name
    optional, required, repeated = FD.LABEL_OPTIONAL, FD.LABEL_REQUIRED, FD.LABEL_REPEATED
    proto = descriptor_pb2.FileDescriptorProto(
        name="kurapayload.proto", package="kuradatatypes", syntax="proto2"
    )
    payload = proto.message_type.add(name="KuraPayload")
    metric = payload.nested_type.add(name="KuraMetric")
    value_type = metric.enum_type.add(name="ValueType")
    for member in MetricType:
        value_type.value.add(name=member.name, number=member.value)
    metric.field.add(name="name", number=1, label=required, type=FD.TYPE_STRING)
    metric.field.add(
        name="type",
        number=2,
        label=required,
        type=FD.TYPE_ENUM,
        type_name=".kuradatatypes.KuraPayload.KuraMetric.ValueType",
    )
    for number, (name, kind) in enumerate(
        [
            ("double_value", FD.TYPE_DOUBLE),
            ("float_value", FD.TYPE_FLOAT),
            ("long_value", FD.TYPE_INT64),
            ("int_value", FD.TYPE_INT32),
            ("bool_value", FD.TYPE_BOOL),
            ("string_value", FD.TYPE_STRING),
            ("bytes_value", FD.TYPE_BYTES),
        ],
        start=3,
    ):
        metric.field.add(name=name, number=number, label=optional, type=kind)
    position = payload.nested_type.add(name="KuraPosition")
    for number, name in enumerate(("latitude", "longitude"), start=1):
        position.field.add(name=name, number=number, label=required, type=FD.TYPE_DOUBLE)
    for number, name in enumerate(("altitude", "precision", "heading", "speed"), start=3):
        position.field.add(name=name, number=number, label=optional, type=FD.TYPE_DOUBLE)
    position.field.add(name="timestamp", number=7, label=optional, type=FD.TYPE_INT64)
    position.field.add(name="satellites", number=8, label=optional, type=FD.TYPE_INT32)
    position.field.add(name="status", number=9, label=optional, type=FD.TYPE_INT32)
    payload.field.add(name="timestamp", number=1, label=optional, type=FD.TYPE_INT64)
    payload.field.add(
        name="position",
        number=2,
        label=optional,
        type=FD.TYPE_MESSAGE,
        type_name=".kuradatatypes.KuraPayload.KuraPosition",
    )
    payload.extension_range.add(start=3, end=5000)
    payload.field.add(
        name="metric",
        number=5000,
        label=repeated,
        type=FD.TYPE_MESSAGE,
        type_name=".kuradatatypes.KuraPayload.KuraMetric",
    )
    payload.field.add(name="body", number=5001, label=optional, type=FD.TYPE_BYTES)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("kuradatatypes.KuraPayload"))


_KuraPayloadPB = _schema()
_POSITION_FIELDS = (
    "altitude",
    "precision",
    "heading",
    "speed",
    "timestamp",
    "satellites",
    "status",
)


def gunzip_if_gzip(data: bytes) -> bytes:
    """Kura's rule: gunzip when the bytes start with the gzip magic; if that fails, they were
    not gzip after all (a false positive of the magic) and are returned as they are.

    Both codecs read every payload through here first. A payload over MAX_DECOMPRESSED_BYTES,
    or a stream that inflates beyond it (a gzip bomb), is refused with PayloadError before
    any decoding work multiplies its size.
    """
    if len(data) > MAX_DECOMPRESSED_BYTES:
        raise PayloadError(
            f"payload of {len(data) / 1_048_576:.1f} MB is over the"
            f" {MAX_DECOMPRESSED_BYTES // 1_048_576} MB limit; refused"
        )
    if not data.startswith(GZIP_MAGIC):
        return data
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_DECOMPRESSED_BYTES + 1)
    except zlib.error:
        return data
    if len(out) > MAX_DECOMPRESSED_BYTES or inflater.unconsumed_tail:
        raise PayloadError(
            f"gzip payload inflates beyond {MAX_DECOMPRESSED_BYTES // 1_048_576} MB; refused"
        )
    if not inflater.eof:
        return data  # truncated gzip: not gzip after all, as far as Kura is concerned
    return out


def gzip_if_smaller(data: bytes) -> bytes:
    """Kura's encode.gzip: compress only when that makes the payload shorter."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    packed = packer.compress(data) + packer.flush()
    return packed if len(packed) < len(data) else data


REQUEST_ID = "request.id"
REQUESTER = "requester.client.id"


@immutable
class Prepared:
    """What `ProtobufCodec.prepare` encoded of a request: its own metrics, and its body."""

    metrics: bytes
    body: bytes


def _put_metrics(pb: Any, metrics: Mapping[str, Metric]) -> None:
    for name, metric in metrics.items():
        entry = pb.metric.add()
        entry.name = name
        entry.type = metric.type
        setattr(entry, _VALUE_FIELD[metric.type], metric.value)


def _varint(value: int) -> bytes:
    """A non-negative integer as protobuf writes it (seven bits a byte, low bits first)."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_METRIC_FIELD = _varint(5000 << 3 | 2)
"""The key of one element of `metric` (field 5000, length-delimited)."""
_REQUEST_ID_ENTRY = (
    b"\x0a" + _varint(len(REQUEST_ID)) + REQUEST_ID.encode() + b"\x10" + bytes((MetricType.STRING,))
    + _varint(8 << 3 | 2)
)  # fmt: skip
"""A `request.id` metric up to its value: name (1), type STRING (2), string_value (8)."""


class ProtobufCodec:
    """`kura-protobuf` payload encoding (Kura's default)."""

    name = "kura-protobuf"

    def __init__(self, gzip: bool = False) -> None:
        self.gzip = gzip
        self._stamped: tuple[int | None, bytes] = (None, b"")
        """The last timestamp a request was encoded at, encoded."""

    def encode(self, payload: KuraPayload) -> bytes:
        pb: Any = _KuraPayloadPB()
        if payload.timestamp is not None:
            pb.timestamp = payload.timestamp
        if payload.position is not None:
            position = pb.position
            position.latitude = payload.position.latitude
            position.longitude = payload.position.longitude
            for name in _POSITION_FIELDS:
                value = getattr(payload.position, name)
                if value is not None:
                    setattr(position, name, value)
        _put_metrics(pb, payload.metrics)
        if payload.body is not None:
            pb.body = payload.body
        data: bytes = pb.SerializeToString()
        return gzip_if_smaller(data) if self.gzip else data

    # -- a request sent to many devices: its own part encoded once ----------------------------
    #
    # A request's payload is its timestamp, its own metrics, `request.id`, `requester.client.id`
    # and its body, in that order. Protobuf writes the fields of a message by field number
    # (timestamp 1, metric 5000, body 5001) and a repeated field element by element, so the
    # payload is the concatenation of those parts, each encoded on its own: the same bytes
    # as `encode` (tests/device pins them), with only the timestamp and the request id
    # encoded per request.

    def prepare(self, metrics: Mapping[str, Metric], body: bytes | None) -> Prepared | None:
        """The parts of a request that are the same at every send (`metrics`, `body`); None
        when it names a metric the client adds (then `encode` is the way)."""
        if REQUEST_ID in metrics or REQUESTER in metrics:
            return None
        pb: Any = _KuraPayloadPB()
        _put_metrics(pb, metrics)
        own = pb.SerializeToString()
        tail = b""
        if body is not None:
            pb = _KuraPayloadPB()
            pb.body = body
            tail = pb.SerializeToString()
        return Prepared(own, tail)

    def requester(self, client_id: str) -> bytes:
        """The `requester.client.id` metric, encoded (the same for every request)."""
        pb: Any = _KuraPayloadPB()
        _put_metrics(pb, {REQUESTER: Metric.string(client_id)})
        data: bytes = pb.SerializeToString()
        return data

    def encode_request(
        self, prepared: Prepared, request_id: str, requester: bytes, timestamp: int
    ) -> bytes:
        """`encode` of the request's metrics, `request.id`, `requester.client.id` (as
        `requester` encoded it) and its body, at `timestamp`."""
        stamped = self._stamped
        if stamped[0] != timestamp:  # requests sent within a millisecond share it
            pb: Any = _KuraPayloadPB()
            pb.timestamp = timestamp
            stamped = self._stamped = (timestamp, pb.SerializeToString())
        value = request_id.encode("utf-8")
        entry = _REQUEST_ID_ENTRY + _varint(len(value)) + value
        data = b"".join(
            (stamped[1], prepared.metrics, _METRIC_FIELD, _varint(len(entry)), entry, requester,
             prepared.body)
        )  # fmt: skip
        return gzip_if_smaller(data) if self.gzip else data

    def decode(self, data: bytes) -> KuraPayload:
        """Read a payload; PayloadError when it is not a KuraPayload at all."""
        raw = gunzip_if_gzip(data)
        pb: Any = _KuraPayloadPB()
        try:
            pb.MergeFromString(raw)  # Merge: a metric lacking a required field is skipped below
        except message.DecodeError as error:
            raise PayloadError(f"not a KuraPayload (protobuf: {error})") from None
        metrics: dict[str, Metric] = {}
        for entry in pb.metric:
            if not entry.IsInitialized():  # a name and a type, its two required fields
                continue
            kind, value_field = _KINDS[entry.type]
            metrics[entry.name] = Metric(kind, getattr(entry, value_field))
        position = None
        if pb.HasField("position"):
            p = pb.position
            position = Position(
                p.latitude,
                p.longitude,
                *(getattr(p, n) if p.HasField(n) else None for n in _POSITION_FIELDS),
            )
        return KuraPayload(
            metrics=metrics,
            body=pb.body if pb.HasField("body") else None,
            timestamp=pb.timestamp if pb.HasField("timestamp") else None,
            position=position,
        )
