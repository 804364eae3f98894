"""The KuraPayload codec matches Kura byte for byte and survives what devices may send."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobrunner.device.jsoncodec import JsonCodec
from jobrunner.device.payload import (
    MAX_DECOMPRESSED_BYTES,
    KuraPayload,
    Metric,
    MetricType,
    Position,
    ProtobufCodec,
    gunzip_if_gzip,
)
from jobrunner.errors import PayloadError
from tests.device.fuzzing import FUZZ, kura_payloads

CODEC = ProtobufCodec()

# ../shared/kura-protocol.md §7.1 b: hand-computed encodings, metric order as listed.
VECTORS = [
    (
        "V1-request-metrics",
        KuraPayload.of(
            {"request.id": Metric.string("42"), "requester.client.id": Metric.string("runner-1")}
        ),
        "c2b802120a0a726571756573742e6964100542023432c2b802210a137265717565737465722e636c"
        "69656e742e69641005420872756e6e65722d31",
    ),
    (
        "V2-reply",
        KuraPayload.of({"response.code": Metric.int32(200)}, timestamp=1700000000000),
        "0880d095ffbc31c2b802140a0d726573706f6e73652e636f6465100330c801",
    ),
    (
        "V3-notify",
        KuraPayload.of(
            {
                "job.id": Metric.int64(123456789),
                "dp.download.status": Metric.string("COMPLETED"),
                "dp.download.progress": Metric.int32(100),
            },
            timestamp=1700000000000,
        ),
        "0880d095ffbc31c2b8020f0a066a6f622e6964100228959aef3ac2b802210a1264702e646f776e6c6f"
        "61642e73746174757310054209434f4d504c45544544c2b8021a0a1464702e646f776e6c6f61642e70"
        "726f677265737310033064",
    ),
    (
        "V4-negative-int32",
        KuraPayload.of({"command.exit.code": Metric.int32(-1)}),
        "c2b802200a11636f6d6d616e642e657869742e636f6465100330ffffffffffffffffff01",
    ),
    (
        "V5-bool-and-body",
        KuraPayload.of({"x": Metric.boolean(True)}, body=b"hi"),
        "c2b802070a017810043801cab802026869",
    ),
]


@pytest.mark.parametrize(
    ("payload", "hex_bytes"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS]
)
def test_documented_vectors_encode_byte_for_byte(payload: KuraPayload, hex_bytes: str) -> None:
    assert CODEC.encode(payload).hex() == hex_bytes


@pytest.mark.parametrize(
    ("payload", "hex_bytes"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS]
)
def test_documented_vectors_decode_to_the_same_payload(
    payload: KuraPayload, hex_bytes: str
) -> None:
    assert CODEC.decode(bytes.fromhex(hex_bytes)) == payload


def test_metric_types_are_kept_exactly() -> None:
    payload = KuraPayload.of(
        {
            "d": Metric.double(1.5),
            "f": Metric.float32(0.25),
            "l": Metric.int64(2**40),
            "i": Metric.int32(-7),
            "b": Metric.boolean(False),
            "s": Metric.string("é"),
            "y": Metric.raw(b"\x00\xff"),
        },
        body=b"",
        timestamp=0,
    )
    payload.position = Position(45.07, 7.68, altitude=240.0, satellites=9)
    decoded = CODEC.decode(CODEC.encode(payload))
    assert decoded == payload
    assert [m.type for m in decoded.metrics.values()] == [
        MetricType.DOUBLE,
        MetricType.FLOAT,
        MetricType.INT64,
        MetricType.INT32,
        MetricType.BOOL,
        MetricType.STRING,
        MetricType.BYTES,
    ]


def test_null_metrics_are_never_sent() -> None:
    payload = KuraPayload.of({"a": Metric.string("x"), "b": None})
    assert list(CODEC.decode(CODEC.encode(payload)).metrics) == ["a"]


def test_int32_range_is_enforced() -> None:
    with pytest.raises(PayloadError, match="does not fit an INT32"):
        Metric.int32(2**31)


def test_gzip_is_read_and_written_only_when_shorter() -> None:
    big = KuraPayload.of({"response.code": Metric.int32(200)}, body=b"<bundles/>" * 200)
    small = KuraPayload.of({"response.code": Metric.int32(200)})
    gzipping = ProtobufCodec(gzip=True)
    assert gzipping.encode(big)[:2] == b"\x1f\x8b"
    assert gzipping.encode(small) == CODEC.encode(small)
    assert CODEC.decode(gzipping.encode(big)) == big


def test_gzip_magic_false_positive_keeps_the_bytes_like_kura() -> None:
    # A body that merely starts with 1f 8b (e.g. a JSON payload's raw bytes) is not gzip.
    not_gzip = b"\x1f\x8b is how this text starts"
    assert gunzip_if_gzip(not_gzip) == not_gzip
    truncated = gzip.compress(b"x" * 1000)[:-12]
    assert gunzip_if_gzip(truncated) == truncated


def test_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip.compress(b"\0" * (MAX_DECOMPRESSED_BYTES + 1024))
    assert len(bomb) < 100_000
    with pytest.raises(PayloadError, match="inflates beyond"):
        CODEC.decode(bomb)


@pytest.mark.parametrize(
    "data",
    [b"not protobuf at all", b"\xff\xff\xff\xff", bytes.fromhex("c2b80214"), b"\x0a\x05"],
    ids=["text", "garbage", "truncated-metric", "truncated-field"],
)
def test_bytes_that_are_not_a_payload_raise_payload_error(data: bytes) -> None:
    with pytest.raises(PayloadError, match="not a KuraPayload"):
        CODEC.decode(data)


def test_metric_missing_its_required_fields_is_skipped() -> None:
    # a metric with a name but no type, then a well-formed one
    data = bytes.fromhex("c2b802030a0178") + CODEC.encode(KuraPayload.of({"ok": Metric.int32(1)}))
    assert list(CODEC.decode(data).metrics) == ["ok"]


def test_reading_a_metric_of_the_wrong_type_says_so() -> None:
    payload = KuraPayload.of({"response.code": Metric.string("200")})
    with pytest.raises(PayloadError, match=r"'response\.code' is STRING, expected an integer"):
        payload.integer("response.code")


def test_json_codec_round_trips_what_json_can_carry() -> None:
    codec = JsonCodec()
    payload = KuraPayload.of(
        {
            "n": Metric.int64(5),
            "s": Metric.string("x"),
            "b": Metric.boolean(True),
            "d": Metric.double(2.5),
        },
        body=b"\x01\x02",
        timestamp=1700000000000,
    )
    assert codec.decode(codec.encode(payload)) == payload


def test_json_codec_reads_integral_numbers_as_int64_like_kura() -> None:
    decoded = JsonCodec().decode(b'{"sentOn": 1, "METRICS": {"response.code": 200}}')
    assert decoded.metrics["response.code"] == Metric(MetricType.INT64, 200)
    assert decoded.integer("response.code") == 200


def test_json_document_of_unknown_shape_becomes_the_body_like_kura() -> None:
    assert JsonCodec().decode(b'{"hello": 1}').body == b'{"hello": 1}'


def test_json_that_is_not_json_raises_payload_error() -> None:
    with pytest.raises(PayloadError, match="not a simple-json payload"):
        JsonCodec().decode(b"\x08\x01")


# --- a request encoded in parts: the same bytes as encoding it whole -----------------------


@FUZZ
@given(
    kura_payloads(floats=False),
    st.text(min_size=1, max_size=200) | st.integers(0, 2**63 - 1).map(str),
    st.text(min_size=1, max_size=30),
    st.integers(0, 2**63 - 1),
    st.booleans(),
)
def test_a_request_encoded_in_parts_is_byte_for_byte_the_request_encoded_whole(
    request: KuraPayload, request_id: str, requester: str, timestamp: int, gzip: bool
) -> None:
    codec = ProtobufCodec(gzip=gzip)
    prepared = codec.prepare(request.metrics, request.body)
    whole = {**request.metrics, "request.id": Metric.string(request_id)}
    whole["requester.client.id"] = Metric.string(requester)
    expected = codec.encode(KuraPayload(metrics=whole, body=request.body, timestamp=timestamp))
    if prepared is None:  # it names request.id or requester.client.id itself
        assert {"request.id", "requester.client.id"} & set(request.metrics)
        return
    parts = codec.encode_request(prepared, request_id, codec.requester(requester), timestamp)
    assert parts == expected
    again = codec.encode_request(prepared, request_id, codec.requester(requester), timestamp)
    assert again == expected  # the timestamp remembered from the last request


def test_a_request_naming_a_metric_the_client_adds_is_not_prepared() -> None:
    codec = ProtobufCodec()
    assert codec.prepare({"request.id": Metric.string("mine")}, None) is None
    assert codec.prepare({"requester.client.id": Metric.string("x")}, b"") is None
    assert codec.prepare({"command.command": Metric.string("ls")}, b"") is not None
