"""The outbox keeps every event until it is delivered, in order, and no more than that."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobrunner.cli.main import cli
from jobrunner.errors import StateError
from jobrunner.state import outbox
from jobrunner.state.journal import Journal
from jobrunner.state.layout import StateDir
from jobrunner.state.outbox import (
    DELIVERED_FORMAT,
    Backlog,
    Outbox,
    OutboxReader,
    OutboxWriter,
    adopt_shared,
    backlog,
    lane_folder,
    lanes,
)
from jobrunner.state.stores.base import Storage
from jobrunner.state.stores.files import FileStorage
from jobrunner.state.stores.postgres import PostgresStorage


def event(n: int) -> dict[str, object]:
    return {
        "id": f"e{n}",
        "type": "jobrunner.execution.ended",
        "time": f"2026-01-01T00:00:{n:02d}.000Z",
        "data": {"n": n},
    }


def test_each_notification_has_a_lane_of_its_own(storage: Storage) -> None:
    folder = storage.root / "outbox"
    box = Outbox(storage, folder)
    for n, to in enumerate(["acme/slow", "acme/fast", "acme/slow", "other/fast"]):
        box.put(to, event(n))
    assert lanes(storage, folder) == ["acme/fast", "acme/slow", "other/fast"]
    slow = OutboxReader(storage, lane_folder(folder, "acme/slow"))
    fast = OutboxReader(storage, lane_folder(folder, "acme/fast"))
    assert [e.id for e in slow.undelivered()] == ["e0@acme/slow", "e2@acme/slow"]
    first = fast.oldest()
    assert first is not None and first.id == "e1@acme/fast"
    fast.delivered(first, "delivered (200)")
    assert fast.oldest() is None and slow.undelivered()[0].id == "e0@acme/slow"
    assert backlog(storage, folder) == [
        Backlog("acme/fast", 0, None, 0),
        Backlog("acme/slow", 2, datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC), 0),
        Backlog("other/fast", 1, datetime(2026, 1, 1, 0, 0, 3, tzinfo=UTC), 0),
    ]
    box.close()


def test_a_full_lane_drops_its_oldest_but_the_one_being_posted(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "SEGMENT_EVENTS", 2)
    folder = storage.root / "outbox"
    box = Outbox(storage, folder)
    for n in range(7):
        box.put("acme/ops", event(n))
    reader = OutboxReader(storage, lane_folder(folder, "acme/ops"))
    assert reader.drop_oldest(3, keep="e0@acme/ops") == 4
    assert reader.drop_oldest(3, keep="e0@acme/ops") == 0
    assert [e.id for e in reader.undelivered()] == ["e0@acme/ops", "e5@acme/ops", "e6@acme/ops"]
    assert reader.dropped == 4
    # the segments dropped whole are gone: the lane's records stay bounded
    assert not storage.exists(lane_folder(folder, "acme/ops") / "events.000002.journal")
    again = OutboxReader(storage, lane_folder(folder, "acme/ops"))  # a restarted runner
    assert [e.id for e in again.undelivered()] == ["e0@acme/ops", "e5@acme/ops", "e6@acme/ops"]
    assert again.dropped == 4
    assert backlog(storage, folder) == [
        Backlog("acme/ops", 3, datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC), 4)
    ]
    box.close()


def test_an_older_shared_outbox_is_moved_into_the_lanes_in_order(storage: Storage) -> None:
    folder = storage.root / "outbox"
    old = OutboxWriter(storage, folder)  # as an older jobrunner wrote it: one journal
    for n, to in enumerate(["acme/a", "acme/b", "acme/a"]):
        old.put(to, event(n))
    old.close()
    done = OutboxReader(storage, folder)
    done.delivered(done.undelivered()[0], "delivered (200)")
    assert [(b.notification, b.undelivered) for b in backlog(storage, folder)] == [
        ("acme/a", 1),
        ("acme/b", 1),
    ]
    box = Outbox(storage, folder)
    assert adopt_shared(storage, folder, box) == 2
    box.close()
    assert not storage.exists(folder / "events.000001.journal")
    a = OutboxReader(storage, lane_folder(folder, "acme/a"))
    assert [e.id for e in a.undelivered()] == ["e2@acme/a"]
    assert [(b.notification, b.undelivered) for b in backlog(storage, folder)] == [
        ("acme/a", 1),
        ("acme/b", 1),
    ]


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


def test_a_delivered_segment_left_by_a_crash_is_removed_when_the_lane_is_read_again(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "SEGMENT_EVENTS", 2)
    folder = lane_folder(storage.root / "outbox", "acme/ops")
    writer = OutboxWriter(storage, folder)
    for n in range(3):
        writer.put("acme/ops", event(n))
    writer.close()
    # Its deliveries recorded, then a crash before the segment was removed:
    delivered = Journal(storage, folder / "delivered.000001.journal", DELIVERED_FORMAT, 1)
    for n in range(2):
        delivered.append({"id": f"e{n}@acme/ops", "outcome": "delivered (200)"})
    delivered.flush(durable=True)
    delivered.close()

    reader = OutboxReader(storage, folder)
    assert [e.id for e in reader.undelivered()] == ["e2@acme/ops"]

    assert storage.children(folder) == ["events.000002.journal"]
    reader.close()


def test_a_damaged_outbox_line_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    writer = OutboxWriter(FileStorage(tmp_path), tmp_path)
    writer.put("acme/ops", event(1))
    writer.close()
    with (tmp_path / "events.000001.journal").open("ab") as handle:
        handle.write(b"{oops\n")
    with pytest.raises(StateError, match=r"events\.000001\.journal:3: damaged journal line"):
        OutboxReader(FileStorage(tmp_path), tmp_path).undelivered()


def test_status_shows_each_runners_backlog_of_a_shared_state(state_db: str) -> None:
    storage = PostgresStorage(state_db)
    state = StateDir(storage.root, storage)
    for runner, count in (("runner-a", 2), ("runner-b", 1)):
        box = Outbox(storage, state.owners.outbox(runner))
        for n in range(count):
            box.put("acme/ops", event(n))
        box.close()
    storage.close()
    shown = CliRunner().invoke(
        cli, ["status", "--notifications", "-o", "json", "--state-db", state_db]
    )
    assert shown.exit_code == 0, shown.output
    rows = [(r["runner"], r["notification"], r["undelivered"]) for r in json.loads(shown.output)]
    assert rows == [("runner-a", "acme/ops", 2), ("runner-b", "acme/ops", 1)]
