"""Fuzzing the payload decoders: whatever bytes a device sends, decoding returns a payload or
raises PayloadError, within bounded memory.

Deterministic (`derandomize=True`: the same examples every run) and sized to take a few
seconds; HYPOTHESIS_PROFILE=fuzz (see tests/device/fuzzing.py) runs a hundred times more.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from jobrunner.device.jsoncodec import JsonCodec
from jobrunner.device.payload import (
    MAX_DECOMPRESSED_BYTES,
    KuraPayload,
    Metric,
    MetricType,
    ProtobufCodec,
)
from jobrunner.errors import PayloadError
from tests.device.fuzzing import FUZZ, kura_payloads, mutated

CODECS = (ProtobufCodec(), ProtobufCodec(gzip=True), JsonCodec())
MEMORY_LIMIT = 48 * 1024 * 1024
"""Peak traced allocation allowed while refusing a bomb: three times the 16 MB payload cap."""


def _decodes_or_refuses(data: bytes) -> None:
    for codec in CODECS:
        try:
            payload = codec.decode(data)
        except PayloadError:
            continue
        assert isinstance(payload, KuraPayload)
        assert all(isinstance(m, Metric) for m in payload.metrics.values())


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_decode_or_are_refused(data: bytes) -> None:
    _decodes_or_refuses(data)


@FUZZ
@given(kura_payloads().flatmap(lambda p: mutated(ProtobufCodec().encode(p))))
def test_mutated_protobuf_payloads_decode_or_are_refused(data: bytes) -> None:
    _decodes_or_refuses(data)


@FUZZ
@given(kura_payloads().flatmap(lambda p: mutated(JsonCodec().encode(p))))
def test_mutated_json_payloads_decode_or_are_refused(data: bytes) -> None:
    _decodes_or_refuses(data)


@FUZZ
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_any_json_document_decodes_or_is_refused(document: object) -> None:
    text = json.dumps({"metrics": document, "body": document, "sentOn": document})
    _decodes_or_refuses(text.encode())
    _decodes_or_refuses(json.dumps(document).encode())


@FUZZ
@given(kura_payloads().flatmap(lambda p: mutated(gzip.compress(ProtobufCodec().encode(p)))))
def test_mutated_gzip_payloads_decode_or_are_refused(data: bytes) -> None:
    _decodes_or_refuses(data)


@FUZZ
@given(kura_payloads(floats=False))
def test_what_is_encoded_decodes_to_the_same_payload(payload: KuraPayload) -> None:
    for codec in (ProtobufCodec(), ProtobufCodec(gzip=True)):
        assert codec.decode(codec.encode(payload)) == payload


def test_json_numbers_beyond_any_metric_are_refused_not_raised() -> None:
    for text in ('{"sentOn": NaN}', '{"sentOn": Infinity}', '{"metrics": {"a": 1e999}}'):
        _decodes_or_refuses(text.encode())
    _decodes_or_refuses(b'{"metrics": {"a": ' + b"9" * 5000 + b"}}")
    _decodes_or_refuses(b"[" * 200_000 + b"]" * 200_000)


def _peak(data: bytes) -> tuple[int, list[str]]:
    """Peak traced memory while every codec reads `data`, and what each said."""
    said = []
    tracemalloc.start()
    try:
        for codec in CODECS:
            try:
                codec.decode(data)
                said.append("decoded")
            except PayloadError as error:
                said.append(str(error))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, said


def test_a_gzip_bomb_is_refused_within_bounded_memory() -> None:
    bomb = gzip.compress(b"\0" * (4 * MAX_DECOMPRESSED_BYTES), compresslevel=9)  # 64 MB inflated
    assert len(bomb) < 100_000

    peak, said = _peak(bomb)

    assert all("inflates beyond 16 MB; refused" in text for text in said), said
    assert peak < MEMORY_LIMIT, f"peak {peak / 1_048_576:.1f} MB"


def test_an_oversized_body_is_refused_before_it_is_decoded() -> None:
    huge = ProtobufCodec().encode(
        KuraPayload(
            metrics={"response.code": Metric(MetricType.INT32, 200)}, body=b"x" * (20 << 20)
        )
    )

    peak, said = _peak(huge)

    assert all("over the 16 MB limit; refused" in text for text in said), said
    assert peak < 1024 * 1024, f"peak {peak / 1_048_576:.1f} MB"
