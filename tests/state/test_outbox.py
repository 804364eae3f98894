"""The outbox keeps every event until it is delivered, in order, and no more than that."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner.errors import StateError
from jobrunner.state import outbox
from jobrunner.state.outbox import OutboxReader, OutboxWriter
from jobrunner.state.stores.files import FileStorage


def event(n: int) -> dict[str, object]:
    return {"id": f"e{n}", "type": "jobrunner.execution.ended", "data": {"n": n}}


def test_events_wait_in_order_until_delivered_and_survive_a_restart(tmp_path: Path) -> None:
    writer, reader = (
        OutboxWriter(FileStorage(tmp_path), tmp_path),
        OutboxReader(FileStorage(tmp_path), tmp_path),
    )
    for n in range(3):
        writer.put("acme/ops", event(n))
    waiting = reader.undelivered()
    assert [e.event["id"] for e in waiting] == ["e0", "e1", "e2"]
    assert waiting[0].id == "e0@acme/ops" and waiting[0].to == "acme/ops"
    reader.delivered(waiting[0], "delivered (200)")
    writer.put("acme/other", event(3))
    assert [e.id for e in reader.undelivered()] == ["e1@acme/ops", "e2@acme/ops", "e3@acme/other"]
    writer.close()
    reader.close()

    again = OutboxReader(FileStorage(tmp_path), tmp_path)  # a restarted runner
    assert [e.id for e in again.undelivered()] == ["e1@acme/ops", "e2@acme/ops", "e3@acme/other"]
    again.close()


def test_full_segments_that_were_delivered_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "SEGMENT_EVENTS", 2)
    writer, reader = (
        OutboxWriter(FileStorage(tmp_path), tmp_path),
        OutboxReader(FileStorage(tmp_path), tmp_path),
    )
    for n in range(5):
        writer.put("acme/ops", event(n))
    assert sorted(p.name for p in tmp_path.glob("events.*")) == [
        "events.000001.journal",
        "events.000002.journal",
        "events.000003.journal",
    ]
    for entry in reader.undelivered()[:4]:
        reader.delivered(entry, "delivered (200)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.000003.journal"]
    assert [e.id for e in reader.undelivered()] == ["e4@acme/ops"]
    writer.close()
    reader.close()
    assert (
        OutboxWriter(FileStorage(tmp_path), tmp_path).segment == 3
    )  # a restarted writer goes on in the last one


def test_a_damaged_outbox_line_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    writer = OutboxWriter(FileStorage(tmp_path), tmp_path)
    writer.put("acme/ops", event(1))
    writer.close()
    with (tmp_path / "events.000001.journal").open("ab") as handle:
        handle.write(b"{oops\n")
    with pytest.raises(StateError, match=r"events\.000001\.journal:3: damaged journal line"):
        OutboxReader(FileStorage(tmp_path), tmp_path).undelivered()
