"""Atomic files and journals survive a crash at any byte."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from jobrunner.errors import StateError, StateVersionError
from jobrunner.state import journal as journal_module
from jobrunner.state.journal import Journal, read_json, write_json
from jobrunner.state.stores.files import FileStorage, atomic_write


def test_atomic_write_replaces_the_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "job.json"
    atomic_write(target, b"old")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["job.json"]


def test_journal_reads_back_what_was_appended(tmp_path: Path) -> None:
    journal = Journal(FileStorage(tmp_path), tmp_path / "t.journal", "targets", 1)
    journal.append({"a": 1})
    journal.append({"b": "é"})
    journal.flush(durable=True)
    journal.close()
    assert list(Journal(FileStorage(tmp_path), tmp_path / "t.journal", "targets", 1).read()) == [
        {"a": 1},
        {"b": "é"},
    ]


@pytest.mark.parametrize("cut", range(1, 12))
def test_a_torn_last_line_is_dropped_and_repaired_on_the_next_append(
    tmp_path: Path, cut: int
) -> None:
    path = tmp_path / "t.journal"
    journal = Journal(FileStorage(tmp_path), path, "targets", 1)
    journal.append({"n": 1})
    journal.append({"n": 22222})
    journal.flush()
    journal.close()
    path.write_bytes(path.read_bytes()[:-cut])  # a crash in the middle of the last write

    survivors = list(Journal(FileStorage(tmp_path), path, "targets", 1).read())
    assert survivors in ([{"n": 1}], [{"n": 1}, {"n": 22222}][: len(survivors)])

    again = Journal(FileStorage(tmp_path), path, "targets", 1)
    again.append({"n": 3})
    again.flush()
    again.close()
    assert list(Journal(FileStorage(tmp_path), path, "targets", 1).read())[-1] == {"n": 3}


def test_damage_in_the_middle_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "t.journal"
    path.write_text('{"format":"targets","version":1}\n{"n":1}\n{"n":\n{"n":3}\n')
    with pytest.raises(StateError, match=r"t\.journal:3: damaged journal line"):
        list(Journal(FileStorage(tmp_path), path, "targets", 1).read())


def test_a_newer_version_is_refused_saying_which_side_is_too_old(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    write_json(FileStorage(tmp_path), path, {"format": "job", "version": 9})
    with pytest.raises(StateVersionError, match="written by a newer jobrunner"):
        read_json(FileStorage(tmp_path), path, "job", 1)


def test_compaction_replaces_history_by_a_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "t.journal"
    journal = Journal(FileStorage(tmp_path), path, "targets", 1)
    for n in range(100):
        journal.append({"n": n})
    journal.flush()
    journal.compact([{"n": 99}])
    journal.append({"n": 100})
    journal.flush()
    journal.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"format": "targets", "version": 1},
        {"n": 99},
        {"n": 100},
    ]


def test_a_journal_says_when_it_has_something_to_write_once_per_batch(tmp_path: Path) -> None:
    journal = Journal(FileStorage(tmp_path), tmp_path / "t.journal", "targets", 1)
    told: list[None] = []
    journal.on_pending = lambda: told.append(None)
    journal.append({"n": 1})
    journal.append({"n": 2})
    assert len(told) == 1
    journal.flush()
    journal.append({"n": 3})
    journal.close()
    assert len(told) == 2


def test_a_journal_larger_than_what_is_cut_at_once_reads_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal is cut into lines a piece at a time: records across pieces, the numbering of
    a damaged line and a torn tail are as in one piece."""
    monkeypatch.setattr(journal_module, "LINES_AT_ONCE", 50)
    path = tmp_path / "t.journal"
    records = [{"n": n, "text": "x" * (n % 7)} for n in range(40)]
    written = Journal(FileStorage(tmp_path), path, "targets", 1)
    for record in records:
        written.append(record)
    written.flush()
    written.close()
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"n": 40')  # torn

    read = Journal(FileStorage(tmp_path), path, "targets", 1)
    assert list(read.read()) == records
    assert read.read_to[1:] == (len(whole), 41)  # where a reader goes on: the torn tail left
    with path.open("r+b") as handle:  # the owner finishes the torn line, and appends one
        handle.seek(len(whole))
        handle.write(b'{"n":40}\n{"n":41}\n')
    appended = read.read_appended()
    assert appended is not None and list(appended) == [{"n": 40}, {"n": 41}]

    lines = whole.split(b"\n")
    lines[30] = b'{"n":'
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(StateError, match=r"t\.journal:31: damaged journal line"):
        list(Journal(FileStorage(tmp_path), path, "targets", 1).read())
    lines[30] = b""
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(StateError, match=r"t\.journal:31: empty line in a journal"):
        list(Journal(FileStorage(tmp_path), path, "targets", 1).read())


def test_a_journal_is_read_without_holding_its_whole_text(tmp_path: Path) -> None:
    """A start reads the registry's journal (22 MB for 100,000 devices) beside all it holds:
    it is read a piece at a time, so what reading it takes stays far under its size."""
    path = tmp_path / "devices.journal"
    written = Journal(FileStorage(tmp_path), path, "devices", 1)
    for n in range(60_000):
        written.append({"clientId": f"gw-{n:06d}", "status": "CONNECTED", "pad": "x" * 80})
    written.flush()
    written.close()
    size = path.stat().st_size
    assert size > 6_000_000
    tracemalloc.start()
    try:
        count = sum(1 for _ in Journal(FileStorage(tmp_path), path, "devices", 1).read())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 60_000
    assert peak < size / 4, f"reading {size:,} B took {peak:,} B at once"
