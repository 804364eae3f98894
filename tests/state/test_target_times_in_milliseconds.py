"""A target's times are written as whole milliseconds; the seconds of older journals still read.

Version 1 of `targets.journal` wrote `deadline` and `updated` as float seconds (`"d"`, `"u"`),
the shortest `repr` of each float; version 2 writes integer milliseconds (`"D"`, `"U"`),
cheaper to write and to read. A state directory written before reads as it did.
"""

from __future__ import annotations

import json
from pathlib import Path

from jobrunner.state.stores.files import FileStorage
from jobrunner.state.targets import TARGETS_VERSION, TargetState, TargetStatus, TargetTable

NOW = 1_765_000_000.123456
"""A wall-clock time as `time.time()` gives it: finer than a millisecond."""


def test_times_are_written_as_integer_milliseconds() -> None:
    state = TargetState("gw-1", 1, TargetStatus.PROCESS_AWAITING, None, 3, "77", None, None,
                        NOW + 30, NOW, None, 1, 3)  # fmt: skip
    record = json.loads(state.journal_line())
    assert record["D"] == 1_765_000_030_123 and record["U"] == 1_765_000_000_123
    assert "d" not in record and "u" not in record
    assert (
        state.journal_line()
        == (json.dumps(state.to_record(), separators=(",", ":")) + "\n").encode()
    )


def test_a_written_target_reads_back_to_the_millisecond(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    table = TargetTable(storage, tmp_path / "targets.journal")
    sent = TargetState("gw-1", 2, execution=4, request_id="99", deadline=NOW + 30, updated=NOW,
                       attempts=1, started_in=4)  # fmt: skip
    table.put(sent)
    table.close()
    read = TargetTable(storage, tmp_path / "targets.journal").load().get("gw-1")
    assert read.deadline == 1_765_000_030.123 and read.updated == 1_765_000_000.123
    assert read.request_id == "99" and read.step_index == 2 and read.attempts == 1
    header = json.loads((tmp_path / "targets.journal").read_text().splitlines()[0])
    assert header["version"] == TARGETS_VERSION == 2


def test_a_journal_of_version_1_reads_its_seconds(tmp_path: Path) -> None:
    """A state directory written before: float seconds, read as they were written, and the
    lines appended after them (milliseconds) win as any later line does."""
    path = tmp_path / "targets.journal"
    path.write_text(
        '{"format":"jobrunner.targets","version":1}\n'
        '{"t":"gw-1","i":0,"s":"PROCESS_AWAITING","e":1,"r":"5","d":1765000030.123456,'
        '"u":1765000000.123456,"a":1,"x":1}\n'
        '{"t":"gw-2","i":1,"s":"PROCESS_OK","e":1,"u":1765000001.5,"a":1,"x":1}\n'
    )
    table = TargetTable(FileStorage(tmp_path), path).load()
    one, two = table.get("gw-1"), table.get("gw-2")
    assert (one.deadline, one.updated, one.request_id) == (1765000030.123456, NOW, "5")
    assert (two.status, two.updated, two.deadline) == (TargetStatus.PROCESS_OK, 1765000001.5, None)
    table.put(one.succeeded(2, "done", NOW + 1))
    table.close()
    again = TargetTable(FileStorage(tmp_path), path).load().get("gw-1")
    assert (again.step_index, again.updated, again.deadline) == (1, 1_765_000_001.123, None)


def test_a_time_no_clock_gives_is_kept_as_it_was_read() -> None:
    """A value written by hand (not a finite number) goes the generic way, under the old key,
    and reads back the same; an integer clock (a test's) stays exact."""
    odd = TargetState("gw-1", updated=float("inf"), deadline=True)
    record = json.loads(odd.journal_line())
    assert record["u"] == float("inf") and record["d"] is True
    assert TargetState.from_record(record) == odd
    whole = TargetState.from_record(json.loads(TargetState("gw-1", updated=1000).journal_line()))
    assert whole.updated == 1000
