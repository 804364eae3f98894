"""The fast paths of the state layer write exactly what the straightforward code wrote.

Journal lines, log timestamps and target transitions are on the engine's path for every
reply; each was made cheaper (bench/RESULTS.md says by how much). These tests pin the
bytes and values against the reference implementations they replaced.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobrunner.state import journal as files
from jobrunner.state.logs import timestamp
from jobrunner.state.registry import DeviceRecord, DeviceStatus
from jobrunner.state.targets import TargetState, TargetStatus

SETTINGS = settings(max_examples=300, derandomize=True, deadline=None, database=None)


def reference_line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def reference_timestamp(at: float) -> str:
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --- journal lines --------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
records = st.dictionaries(
    st.text(max_size=8),
    st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6),
    max_size=8,
)


@SETTINGS
@given(records)
def test_journal_lines_are_byte_for_byte_those_of_json_dumps(record: dict[str, Any]) -> None:
    assert files._line(record) == reference_line(record)


def test_journal_lines_of_targets_and_enums_match_json_dumps() -> None:
    state = TargetState('gw-é"1', 2, TargetStatus.PROCESS_OK, "ok\n", 3, None, 7, "p", 1.5, 2.25)
    record = state.to_record()
    assert files._line(record) == reference_line(record)
    assert files._line({"s": TargetStatus.PROCESS_OK}) == reference_line({"s": "PROCESS_OK"})


anything = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
states = st.builds(
    TargetState,
    st.text(max_size=8) | anything,
    st.integers(min_value=0, max_value=20) | anything,
    st.sampled_from(TargetStatus),
    st.none() | st.text(max_size=12) | anything,
    st.none() | st.integers(min_value=1, max_value=10**6) | anything,
    st.none() | st.text(alphabet="0123456789", min_size=1, max_size=19) | anything,
    st.none() | st.integers(min_value=1, max_value=2**62) | anything,
    st.none() | st.text(max_size=8) | anything,
    st.none() | st.floats(min_value=0, max_value=5e9) | anything,
    st.none() | st.floats(min_value=0, max_value=5e9) | st.integers() | anything,
    st.none() | st.sampled_from(["timeout", "device-error:404"]) | anything,
    st.integers(min_value=0, max_value=99) | anything,
    st.none() | st.integers(min_value=1, max_value=10**6) | anything,
)  # every field of its own type mostly, and now and then something a hand might write


@SETTINGS
@given(states)
def test_a_target_writes_its_journal_line_as_json_dumps_writes_its_record(
    state: TargetState,
) -> None:
    assert outcome(lambda s: s.journal_line(), state) == outcome(
        lambda s: reference_line(s.to_record()), state
    )


def test_what_json_cannot_hold_is_refused_as_json_dumps_refuses_it() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        files._line({"x": object()})


def outcome(parse: Any, line: Any) -> str:
    try:
        return repr(parse(line))
    except Exception as error:
        return type(error).__name__


@SETTINGS
@given(st.binary(max_size=40), st.sampled_from([b"", b'{"', b'{"t":"', b"\xef\xbb\xbf{"]))
def test_journal_lines_are_read_as_json_loads_reads_them(tail: bytes, head: bytes) -> None:
    line = head + tail
    assert outcome(files._loads, line) == outcome(json.loads, line)


@SETTINGS
@given(records)
def test_what_is_written_reads_back(record: dict[str, Any]) -> None:
    line = files._line(record).rstrip(b"\n")
    assert outcome(files._loads, line) == outcome(json.loads, line)


@pytest.mark.parametrize(
    "line",
    [b'{"a":1} ', b'{"a":1}\r', b'{"a":1}{"b":2}', b'{"a":1},', b'{"a":NaN}', b'{"a":"\xff"}',
     b'{"a":1', b'{"a":"\\ud800"}', b'{"a":[1,{"b":null}]}'],
)  # fmt: skip
def test_lines_the_scanner_does_not_read_whole_are_read_by_json_loads(line: bytes) -> None:
    assert outcome(files._loads, line) == outcome(json.loads, line)


# --- device records -------------------------------------------------------------------------


def reference_device(record: dict[str, Any]) -> DeviceRecord:
    """`DeviceRecord.from_record` as it was written first: a call per field."""

    def text(name: str, required: bool = False) -> str | None:
        value = record.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or (required and not value):
            raise ValueError(f"'{name}' is not {'a non-empty' if required else 'a'} string")
        return value

    client_id = text("clientId", required=True)
    assert client_id is not None
    declared = record.get("declared", False)
    if not isinstance(declared, bool):
        raise ValueError("'declared' is not true or false")
    try:
        status = DeviceStatus(record.get("status", "UNKNOWN"))
    except ValueError:
        raise ValueError(f"'status' {record.get('status')!r} is not a status") from None
    seen = text("lastSeen")
    ids = record.get("applicationIds")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise ValueError("'applicationIds' is not a list of strings")
    return DeviceRecord(
        client_id=client_id,
        declared=declared,
        status=status,
        last_seen=datetime.fromisoformat(seen) if seen else None,
        display_name=text("displayName"),
        model=text("model"),
        model_id=text("modelId"),
        firmware=text("firmware"),
        framework_version=text("frameworkVersion"),
        application_ids=None if ids is None else tuple(ids),
    )


def device_outcome(read: Any, record: dict[str, Any]) -> str:
    try:
        return repr(read(record))
    except (ValueError, TypeError) as error:
        return f"{type(error).__name__}: {error}"


wrong = st.none() | st.booleans() | st.integers() | st.text(max_size=3) | st.lists(st.text())
device_records = st.fixed_dictionaries(
    {"clientId": st.sampled_from(["gw-1", ""]) | wrong},
    optional={
        "declared": st.booleans() | wrong,
        "status": st.sampled_from([s.value for s in DeviceStatus]) | wrong,
        "lastSeen": st.sampled_from([None, "2026-12-01T00:00:00+00:00"]) | wrong,
        "displayName": st.none() | st.text(max_size=3) | wrong,
        "model": st.none() | st.text(max_size=3),
        "modelId": st.none() | st.text(max_size=3),
        "firmware": st.none() | wrong,
        "frameworkVersion": st.none() | st.text(max_size=3),
        "applicationIds": st.none() | st.lists(st.text(max_size=3)) | wrong,
    },
)


@SETTINGS
@given(device_records)
def test_device_records_read_as_the_reference_reads_them(record: dict[str, Any]) -> None:
    single = sum(  # with several fields wrong, the two may name another one first
        device_outcome(reference_device, {"clientId": "gw-1", k: v}).startswith("ValueError")
        for k, v in record.items()
        if k != "clientId"
    )
    found = device_outcome(DeviceRecord.from_record, record)
    expected = device_outcome(reference_device, record)
    if single <= 1 or not expected.startswith("ValueError"):
        assert found == expected
    else:
        assert found.startswith("ValueError")


def test_every_recorded_device_reads_back() -> None:
    device = DeviceRecord(
        "gw-é", True, DeviceStatus.CONNECTED, datetime(2026, 12, 1, tzinfo=UTC), "n", "m",
        "mid", "f", "v", ("a", "b"),
    )  # fmt: skip
    assert DeviceRecord.from_record(device.as_record()) == device


# --- log timestamps -------------------------------------------------------------------------

EDGES = [
    0.0, 0.0005, 0.9994999, 0.9995, 0.9999995, 0.9999994999, 1.0000005, 59.9999996,
    1_795_781_234.9999996, 1_795_781_234.0000004, 1e9 + 0.5e-6, 1e9 + 1.5e-6, 2.5e-6,
    1_700_000_000.1234565, 4_102_444_799.9999999, -0.0004, -1.9999996, -86_400.5,
]  # fmt: skip


@pytest.mark.parametrize("at", EDGES)
def test_log_timestamps_round_as_datetime_does_at_the_edges(at: float) -> None:
    assert timestamp(at) == reference_timestamp(at)


@SETTINGS
@given(
    st.integers(min_value=0, max_value=4_102_444_799),
    st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_log_timestamps_are_those_of_datetime(second: int, fraction: float) -> None:
    at = second + fraction
    assert timestamp(at) == reference_timestamp(at)
    assert timestamp(at) == reference_timestamp(at)  # the cached second gives the same text


@SETTINGS
@given(
    st.integers(min_value=0, max_value=4_102_444_799),
    st.lists(st.floats(min_value=0.0, max_value=2.0, exclude_max=True), max_size=12),
)
def test_log_timestamps_of_times_close_together_are_those_of_datetime(
    second: int, fractions: list[float]
) -> None:
    """Lines of one turn: in the same second and millisecond as the one before, or near a
    millisecond's edge, each time is written as `datetime` writes it."""
    for fraction in [0.5, *sorted(fractions), 0.5004999, 0.5005001, 0.5009999]:
        at = second + fraction
        assert timestamp(at) == reference_timestamp(at)


def test_a_timestamp_without_argument_is_now() -> None:
    text = timestamp()
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    assert math.isclose(parsed, datetime.now(UTC).timestamp(), abs_tol=60)


# --- target records ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["PROCESS_OK", "NOPE", 3, None, ["PROCESS_OK"]])
def test_target_records_read_their_status_as_the_enum_does(raw: object) -> None:
    record = {"t": "gw-1", "i": 0, "s": raw}
    try:
        expected: object = TargetStatus(cast(str, raw))
    except ValueError as error:
        expected = str(error)
    try:
        found: object = TargetState.from_record(record).status
    except ValueError as error:
        found = str(error)
    assert found == expected


# --- target transitions ---------------------------------------------------------------------


def reference_transitions(s: TargetState, now: float) -> dict[str, TargetState]:
    """The transitions as `dataclasses.replace` wrote them before (`TargetState.replace`
    makes the same value)."""
    status = s.status
    if status is TargetStatus.PROCESS_FAILED:
        status = TargetStatus.PROCESS_AWAITING
    cleared = s.replace(request_id=None, operation_id=None, phase=None, deadline=None, updated=now)
    return {
        "enter": s.replace(status=status, execution=9, message=None, updated=now),
        "start": s.replace(attempts=s.attempts + 1, started_in=9, message=None, updated=now),
        "waiting": s.replace(message="waits for wave 'rest'", updated=now),
        "dispatched": s.replace(
            status=TargetStatus.PROCESS_AWAITING, request_id="r-9", operation_id=99,
            phase=None, deadline=now + 30, message=None, updated=now,
        ),
        "accepted": s.replace(
            status=TargetStatus.AWAITING_COMPLETION, request_id=None, deadline=now + 60,
            phase="download", updated=now,
        ),
        "progressed": s.replace(phase="install", message="50 %", updated=now),
        "notified": s.replace(
            status=TargetStatus.NOTIFIED_COMPLETION, request_id=None, deadline=None,
            message="done", updated=now,
        ),
        "succeeded-next": cleared.replace(
            step_index=s.step_index + 1, status=TargetStatus.PROCESS_AWAITING,
            message=None,
        ),
        "succeeded-last": cleared.replace(status=TargetStatus.PROCESS_OK, message="all done"),
        "failed": s.replace(
            status=TargetStatus.PROCESS_FAILED, message="no reply", request_id=None,
            operation_id=None, phase=None, deadline=None, updated=now,
        ),
    }  # fmt: skip


def transitions(s: TargetState, now: float) -> dict[str, TargetState]:
    return {
        "enter": s.enter(9, now),
        "start": s.start(9, now),
        "waiting": s.waiting("waits for wave 'rest'", now),
        "dispatched": s.dispatched("r-9", now + 30, now, 99),
        "accepted": s.accepted(now + 60, "download", now),
        "progressed": s.progressed("install", "50 %", now),
        "notified": s.notified("done", now),
        "succeeded-next": s.succeeded(s.step_index + 2, None, now),
        "succeeded-last": s.succeeded(s.step_index + 1, "all done", now),
        "failed": s.failed("no reply", now),
    }


optional_text = st.none() | st.text(max_size=5)
target_states = st.builds(
    TargetState,
    client_id=st.text(min_size=1, max_size=5),
    step_index=st.integers(min_value=0, max_value=5),
    status=st.sampled_from(TargetStatus),
    message=optional_text,
    execution=st.none() | st.integers(min_value=1, max_value=9),
    request_id=optional_text,
    operation_id=st.none() | st.integers(min_value=1, max_value=2**62),
    phase=optional_text,
    deadline=st.none() | st.floats(min_value=0, max_value=2e9),
    updated=st.none() | st.floats(min_value=0, max_value=2e9),
    attempts=st.integers(min_value=0, max_value=5),
    started_in=st.none() | st.integers(min_value=1, max_value=9),
)


@SETTINGS
@given(target_states, st.floats(min_value=0, max_value=2e9))
def test_target_transitions_keep_and_clear_the_same_fields_as_before(
    state: TargetState, now: float
) -> None:
    assert transitions(state, now) == reference_transitions(state, now)
