"""The outbox: notification events waiting to be posted, and which of them were.

    STATE/outbox/
      events.000001.journal       the events, in the order they happened (the engine appends)
      delivered.000001.journal    the ids of those posted or given up (the sender appends)

One writer per file: the engine's thread appends events, the sender's thread appends what it
delivered, so neither waits for the other. An event is written when it happens, before the
engine goes on; a delivery is recorded (fsync) as soon as the receiver took it. A crash at
any instant therefore loses no event, and posts one again at most when it came between the
receiver's answer and that record: delivery is at least once.

Events go into segments of SEGMENT_EVENTS; once a segment is full and all of it delivered,
the sender removes both of its files, so the outbox stays small however long the runner runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobrunner.state.journal import Journal, Record
from jobrunner.state.stores.base import Storage

OUTBOX_FORMAT = "jobrunner.outbox"
DELIVERED_FORMAT = "jobrunner.delivered"
OUTBOX_VERSION = 1
SEGMENT_EVENTS = 1000
_SEGMENT = re.compile(r"^events\.(\d{6})\.journal$")


@dataclass(frozen=True)
class Entry:
    """One event for one notification (`to` is `SCOPE/NAME`)."""

    id: str
    to: str
    event: dict[str, Any]
    segment: int


def _segments(storage: Storage, folder: Path) -> list[int]:
    return sorted(int(m.group(1)) for n in storage.children(folder) if (m := _SEGMENT.match(n)))


def _events(storage: Storage, folder: Path, segment: int) -> Journal:
    path = folder / f"events.{segment:06d}.journal"
    return Journal(storage, path, OUTBOX_FORMAT, OUTBOX_VERSION)


def _delivered(storage: Storage, folder: Path, segment: int) -> Journal:
    path = folder / f"delivered.{segment:06d}.journal"
    return Journal(storage, path, DELIVERED_FORMAT, OUTBOX_VERSION)


class OutboxWriter:
    """The engine's side: appends each event as it happens."""

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


@dataclass
class _Segment:
    events: Journal
    delivered: Journal
    entries: list[Entry] = field(default_factory=list)
    done: set[str] = field(default_factory=set)


class OutboxReader:
    """The sender's side: what is still to be posted, in order; records deliveries."""

    def __init__(self, storage: Storage, folder: Path) -> None:
        self.storage = storage
        self.folder = folder
        self._segments: dict[int, _Segment] = {}

    def undelivered(self) -> list[Entry]:
        """Every event not yet delivered, oldest first (reads only what was appended since)."""
        for number in _segments(self.storage, self.folder):
            if number not in self._segments:
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
                else:
                    segment.entries.extend(_entry(r, number) for r in appended)
        return [
            entry
            for number in sorted(self._segments)
            for entry in self._segments[number].entries
            if entry.id not in self._segments[number].done
        ]

    def delivered(self, entry: Entry, outcome: str) -> None:
        """Record that `entry` was posted (or given up: `outcome` says how), durably."""
        segment = self._segments[entry.segment]
        segment.delivered.append({"id": entry.id, "outcome": outcome})
        segment.delivered.flush(durable=True)
        segment.done.add(entry.id)
        self._drop_finished()

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

    def close(self) -> None:
        for segment in self._segments.values():
            segment.delivered.close()
            segment.events.close()


def _entry(record: Record, segment: int) -> Entry:
    return Entry(str(record["id"]), str(record["to"]), dict(record["event"]), segment)
