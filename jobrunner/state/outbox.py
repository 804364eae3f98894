"""The outbox: notification events waiting to be posted, one lane per notification.

    OUTBOX/notifications/SCOPE/NAME/     one lane: the events for notification SCOPE/NAME
      events.000001.journal       its events, in the order they happened (the engine appends)
      delivered.000001.journal    the ids of those posted, given up or dropped (its sender)
      dropped.json                how many of its events were dropped in all (the lane was full)

OUTBOX is the runner's outbox folder (`Owners.outbox`). Each notification has a lane of its
own, so that its sender reads and records its events alone: a receiver that hangs holds up
its own lane, never another's, and a lane's disk is bounded by its own cap (`drop_oldest`).

One writer per file: the engine's thread appends events, the lane's sender appends what it
delivered, so neither waits for the other. An event is written when it happens, before the
engine goes on; a delivery is recorded (fsync) as soon as the receiver took it. A crash at
any instant therefore loses no event, and posts one again at most when it came between the
receiver's answer and that record: delivery is at least once.

Events go into segments of SEGMENT_EVENTS; once a segment is full and all of it delivered,
the sender removes both of its files, so a lane stays small however long the runner runs.

An outbox written by an older jobrunner kept every notification's events in one journal,
OUTBOX/events.NNNNNN.journal; `adopt_shared` moves what it had not delivered into the lanes.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobrunner.errors import StateError
from jobrunner.state.journal import Journal, Record, read_json, write_json
from jobrunner.state.layout import safe_name
from jobrunner.state.stores.base import Storage

OUTBOX_FORMAT = "jobrunner.outbox"
DELIVERED_FORMAT = "jobrunner.delivered"
DROPPED_FORMAT = "jobrunner.outbox-dropped"
OUTBOX_VERSION = 1
SEGMENT_EVENTS = 1000
LANES = "notifications"
"""The folder of the lanes, under the outbox (beside an older jobrunner's shared journal)."""
_SEGMENT = re.compile(r"^events\.(\d{6})\.journal$")


@dataclass(frozen=True)
class Entry:
    """One event for one notification (`to` is `SCOPE/NAME`)."""

    id: str
    to: str
    event: dict[str, Any]
    segment: int


def lane_folder(outbox: Path, to: str) -> Path:
    """The folder of notification `to`'s lane (StateError for a name that cannot be one)."""
    scope, _, name = to.partition("/")
    return outbox / LANES / safe_name(scope, "scope") / safe_name(name, "notification")


def lanes(storage: Storage, outbox: Path) -> list[str]:
    """The notifications (`SCOPE/NAME`) that have a lane in `outbox`, sorted (a folder
    left empty by a removed lane is none)."""
    root = outbox / LANES
    return [
        f"{scope}/{name}"
        for scope in storage.children(root)
        for name in storage.children(root / scope)
        if storage.children(root / scope / name)
    ]


def _segments(storage: Storage, folder: Path) -> list[int]:
    return sorted(int(m.group(1)) for n in storage.children(folder) if (m := _SEGMENT.match(n)))


def _events(storage: Storage, folder: Path, segment: int) -> Journal:
    path = folder / f"events.{segment:06d}.journal"
    return Journal(storage, path, OUTBOX_FORMAT, OUTBOX_VERSION)


def _delivered(storage: Storage, folder: Path, segment: int) -> Journal:
    path = folder / f"delivered.{segment:06d}.journal"
    return Journal(storage, path, DELIVERED_FORMAT, OUTBOX_VERSION)


def _dropped_count(storage: Storage, folder: Path) -> int:
    try:
        record = read_json(storage, folder / "dropped.json", DROPPED_FORMAT, OUTBOX_VERSION)
    except FileNotFoundError:
        return 0
    count = record.get("count")
    return count if isinstance(count, int) and count >= 0 else 0


class OutboxWriter:
    """The engine's side of one lane: appends each event as it happens."""

    def __init__(self, storage: Storage, folder: Path) -> None:
        self.storage = storage
        self.folder = folder
        found = _segments(storage, folder)
        self.segment = found[-1] if found else 1
        self._journal = _events(storage, folder, self.segment)
        self._count = sum(1 for _ in self._journal.read())

    def put(self, to: str, event: dict[str, Any]) -> None:
        """Record an event for the notification `to`, now (OSError when the disk refuses)."""
        if self._count >= SEGMENT_EVENTS:
            self._journal.close()
            self.segment += 1
            self._journal, self._count = _events(self.storage, self.folder, self.segment), 0
        # One entry per receiver: the same event (its CloudEvents id) may go to several.
        self._journal.append({"id": f"{event['id']}@{to}", "to": to, "event": event})
        self._journal.flush()
        self._count += 1

    def close(self) -> None:
        self._journal.close()


class Outbox:
    """The engine's side of every lane: each event goes to its notification's lane."""

    def __init__(self, storage: Storage, folder: Path) -> None:
        self.storage = storage
        self.folder = folder
        self._writers: dict[str, OutboxWriter] = {}
        # The engine's thread puts; the sender's thread takes up an older outbox and
        # removes the lanes of notifications no longer declared.
        self._lock = threading.Lock()

    def put(self, to: str, event: dict[str, Any]) -> None:
        """Record an event for the notification `to`, now (OSError when the disk refuses)."""
        with self._lock:
            writer = self._writers.get(to)
            if writer is None:
                writer = OutboxWriter(self.storage, lane_folder(self.folder, to))
                self._writers[to] = writer
            writer.put(to, event)

    def remove_lane(self, reader: OutboxReader) -> None:
        """Remove a lane whose notification is no longer declared, unless an event came
        for it since `reader` found nothing waiting."""
        to = reader.folder.relative_to(self.folder / LANES).as_posix()
        with self._lock:
            if reader.oldest() is not None:
                return
            writer = self._writers.pop(to, None)
            if writer is not None:
                writer.close()
            reader.remove()

    def close(self) -> None:
        with self._lock:
            for writer in self._writers.values():
                writer.close()
            self._writers.clear()


@dataclass
class _Segment:
    events: Journal
    delivered: Journal
    entries: list[Entry] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    first: int = 0
    """Entries before this index are all done: the next look starts here."""


class OutboxReader:
    """The sender's side of one lane: what is still to be posted, in order; records
    deliveries and drops. (Over an older jobrunner's shared folder: every notification's.)"""

    def __init__(self, storage: Storage, folder: Path) -> None:
        self.storage = storage
        self.folder = folder
        self._segments: dict[int, _Segment] = {}
        self.dropped = _dropped_count(storage, folder)
        """How many of the lane's events were dropped in all (kept in `dropped.json`)."""

    def refresh(self) -> None:
        """Read what was appended since the last look (only that). Segments found delivered
        whole (a crash came between the last delivery and their removal) are removed now,
        not at the next delivery, which may never come."""
        found = False
        for number in _segments(self.storage, self.folder):
            if number not in self._segments:
                found = True
                segment = _Segment(
                    _events(self.storage, self.folder, number),
                    _delivered(self.storage, self.folder, number),
                )
                segment.done = {str(r.get("id")) for r in segment.delivered.read()}
                segment.entries = [_entry(r, number) for r in segment.events.read()]
                self._segments[number] = segment
            else:
                segment = self._segments[number]
                appended = segment.events.read_appended()
                if appended is None:  # never replaced in place: read it whole, to be sure
                    segment.entries = [_entry(r, number) for r in segment.events.read()]
                    segment.first = 0
                else:
                    segment.entries.extend(_entry(r, number) for r in appended)
        if found:
            self._drop_finished()

    def waiting(self) -> Iterator[Entry]:
        """The events not yet delivered, oldest first, as last read (`refresh`)."""
        for number in sorted(self._segments):
            segment = self._segments[number]
            while segment.first < len(segment.entries) and (
                segment.entries[segment.first].id in segment.done
            ):
                segment.first += 1  # delivered in order, mostly: skip them once for all
            for entry in segment.entries[segment.first :]:
                if entry.id not in segment.done:
                    yield entry

    def undelivered(self) -> list[Entry]:
        """Every event not yet delivered, oldest first (reads only what was appended since)."""
        self.refresh()
        return list(self.waiting())

    def oldest(self) -> Entry | None:
        """The oldest event not yet delivered (reads only what was appended since)."""
        self.refresh()
        return next(self.waiting(), None)

    def count(self) -> int:
        """How many events wait, as last read (`refresh`)."""
        return sum(
            len(segment.entries) - len(segment.done.intersection(e.id for e in segment.entries))
            for segment in self._segments.values()
        )

    def delivered(self, entry: Entry, outcome: str) -> None:
        """Record that `entry` was posted (or given up: `outcome` says how), durably."""
        segment = self._segments[entry.segment]
        segment.delivered.append({"id": entry.id, "outcome": outcome})
        segment.delivered.flush(durable=True)
        segment.done.add(entry.id)
        self._drop_finished()

    def drop_oldest(self, limit: int, keep: str | None = None) -> int:
        """Drop the oldest events beyond the newest `limit` (but `keep`, the one being
        posted), recorded as dropped, durably; how many were dropped."""
        self.refresh()
        excess = self.count() - limit
        if excess <= 0:
            return 0
        chosen = [e for e in self.waiting() if e.id != keep][:excess]
        touched: set[int] = set()
        for entry in chosen:
            segment = self._segments[entry.segment]
            segment.delivered.append({"id": entry.id, "outcome": "dropped: the lane was full"})
            touched.add(entry.segment)
        for number in sorted(touched):
            self._segments[number].delivered.flush(durable=True)
        for entry in chosen:
            self._segments[entry.segment].done.add(entry.id)
        self.dropped += len(chosen)
        record = {"format": DROPPED_FORMAT, "version": OUTBOX_VERSION, "count": self.dropped}
        write_json(self.storage, self.folder / "dropped.json", record)
        self._drop_finished()
        return len(chosen)

    def _drop_finished(self) -> None:
        """Remove the segments that are full (a later one exists) and all delivered."""
        numbers = sorted(self._segments)
        for number in numbers[:-1]:
            segment = self._segments[number]
            if all(e.id in segment.done for e in segment.entries):
                segment.delivered.close()
                segment.events.close()
                self.storage.remove(segment.events.path)
                self.storage.remove(segment.delivered.path)
                del self._segments[number]

    def remove(self) -> None:
        """Remove the lane's records (its notification is gone, and nothing of it waits)."""
        self.close()
        for number in _segments(self.storage, self.folder):
            self.storage.remove(_events(self.storage, self.folder, number).path)
            self.storage.remove(_delivered(self.storage, self.folder, number).path)
        self.storage.remove(self.folder / "dropped.json")
        self._segments.clear()

    def close(self) -> None:
        for segment in self._segments.values():
            segment.delivered.close()
            segment.events.close()


def _entry(record: Record, segment: int) -> Entry:
    return Entry(str(record["id"]), str(record["to"]), dict(record["event"]), segment)


def adopt_shared(storage: Storage, folder: Path, outbox: Outbox) -> int:
    """Move the events an older jobrunner left undelivered in its one shared journal
    (`folder/events.NNNNNN.journal`) into the lanes, in order, then remove that journal;
    how many were moved. A crash in between posts some of them twice, never loses one."""
    old = OutboxReader(storage, folder)
    waiting = old.undelivered()
    for entry in waiting:
        outbox.put(entry.to, entry.event)
    old.close()
    for number in _segments(storage, folder):
        storage.remove(_events(storage, folder, number).path)
        storage.remove(_delivered(storage, folder, number).path)
    return len(waiting)


@dataclass(frozen=True)
class Backlog:
    """What waits in one notification's lane."""

    notification: str
    undelivered: int
    oldest: datetime | None
    """When the oldest event waiting happened (None: nothing waits)."""
    dropped: int
    """Events dropped in all because the lane was full."""


def backlog(storage: Storage, outbox: Path) -> list[Backlog]:
    """What waits in each lane of `outbox` (and in an older jobrunner's shared journal not
    taken up yet), by notification; read afresh, for `status` and the dashboard."""
    found: dict[str, list[Entry]] = defaultdict(list)
    dropped: dict[str, int] = {}
    for entry in OutboxReader(storage, outbox).undelivered():
        found[entry.to].append(entry)  # older than every lane's
    for to in lanes(storage, outbox):
        try:
            reader = OutboxReader(storage, lane_folder(outbox, to))
        except StateError:
            continue  # a folder that is no notification's name: not a lane
        found[to].extend(reader.undelivered())
        dropped[to] = reader.dropped
    return [
        Backlog(to, len(entries), _when(entries[0]) if entries else None, dropped.get(to, 0))
        for to, entries in sorted(found.items())
    ]


def _when(entry: Entry) -> datetime | None:
    """When the event happened (its CloudEvents `time`); None when it cannot be read."""
    try:
        moment = datetime.fromisoformat(str(entry.event.get("time")))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
