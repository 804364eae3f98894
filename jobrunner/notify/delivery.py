"""Posting the outbox: one lane per notification, its events in order, retried with backoff.

`Notifier` is a companion of `jobrunner watch`: its observer (`events`) writes to the outbox
on the engine's thread; each notification has a lane (`state.outbox`) and a thread of its
own that posts the lane's events, in order (the next waits for the one before). A receiver
that is down, slow, hanging or refusing therefore delays only its own notification's events,
never the engine, nor another notification. What was not delivered when the runner stops
(or is killed) is posted after its restart.

A lane holds at most the notification's `maxBacklog` undelivered events: when a receiver
falls that far behind, the oldest are dropped (logged, and counted in the lane's
`dropped.json`, which `status`, the dashboard and `/metrics` show).

Answers: 2xx delivers. 408, 429, 5xx and no answer at all (refused, timed out) are tried
again after 1 s, 2 s, 4 s ... at most MAX_BACKOFF. Any other 4xx will not change by asking
again (a wrong URL, a refused token): the event is given up, recorded as such, and logged.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from jobrunner.errors import SecretError, StateError
from jobrunner.manifests import ManifestSet
from jobrunner.manifests.notification import Notification
from jobrunner.manifests.secrets import SecretRef, SecretResolver
from jobrunner.notify.events import NotificationEvents
from jobrunner.state.layout import StateDir
from jobrunner.state.outbox import Entry, Outbox, OutboxReader, adopt_shared, lane_folder, lanes

log = logging.getLogger("jobrunner.notify")

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 300.0
IDLE = 1.0  # seconds between looks at the outbox when nothing woke the sender
STOP_WAIT = 2.0  # seconds a stopping daemon waits for the deliveries under way
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
RETRIED = frozenset({408, 425, 429})
DELIVERED, FAILED, GIVEN_UP = "delivered", "failed", "given-up"
OUTCOMES = (DELIVERED, FAILED, GIVEN_UP)
"""What became of each post, counted per notification since the start (`/metrics`): taken
(2xx), failed (tried again later), given up (a 4xx that asking again would not change)."""


class ManifestSource(Protocol):
    """The daemon, as the notifier asks it."""

    @property
    def client_id(self) -> str: ...

    def manifests(self) -> ManifestSet | None: ...


class _Lane:
    """One notification's delivery: its reader of the outbox, its thread, where it stands.

    The lane's thread posts; the notifier's thread trims the lane to its cap. Both touch
    the reader under `lock`, never held while posting (a trim never waits for a receiver).
    """

    def __init__(self, to: str, reader: OutboxReader) -> None:
        self.to = to
        self.reader = reader
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.in_flight: str | None = None
        """The id of the event being posted: never dropped under the sender's feet."""
        self.due = 0.0
        self.backoff = FIRST_BACKOFF
        self.failing: str | None = None
        self.reading_failed: str | None = None


class Notifier:
    """Delivers the events of the Notification manifests, at least once, a lane each."""

    def __init__(
        self,
        state: StateDir | Path,
        secrets: SecretResolver,
        client_id: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        layout = state if isinstance(state, StateDir) else StateDir(state)
        # Runners that share a database keep an outbox each: each posts the events it wrote.
        self.folder = layout.owners.outbox(client_id)
        self.storage = layout.storage
        self.secrets = secrets
        self.clock = clock
        self.outbox = Outbox(self.storage, self.folder)
        self._source: ManifestSource | None = None
        self._wake = threading.Event()
        self._progress = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lanes: dict[str, _Lane] = {}
        self._dispatching = threading.Lock()  # the notifier's thread, and `post_now`'s
        self._listing_failed: str | None = None
        self._outcomes: Counter[tuple[str, str]] = Counter()
        self._outcomes_lock = threading.Lock()  # the lanes' threads count, a scrape reads
        self.observer = NotificationEvents(self.outbox, self._manifests, client_id, self._wake.set)

    def _manifests(self) -> ManifestSet | None:
        return self._source.manifests() if self._source is not None else None

    def outcomes(self) -> dict[tuple[str, str], int]:
        """Posts since the start by (notification SCOPE/NAME, outcome: one of OUTCOMES)."""
        with self._outcomes_lock:
            return dict(self._outcomes)

    def _count(self, lane: _Lane, outcome: str) -> None:
        with self._outcomes_lock:
            self._outcomes[lane.to, outcome] += 1

    def start(self, daemon: ManifestSource) -> None:
        """Post from threads of their own, for as long as the daemon runs."""
        self._source = daemon
        try:  # before the engine's first event, so that the older events stay first
            moved = adopt_shared(self.storage, self.folder, self.outbox)
        except (StateError, OSError) as error:
            log.error("notifications: cannot take up the outbox of an older jobrunner: %s", error)
        else:
            if moved:
                log.info(
                    "notifications: %d event(s) of an older outbox moved to their lanes", moved
                )
        self._start_thread()

    def attach(self, source: ManifestSource) -> None:
        """Route events by `source`'s manifests, without a thread: a command that runs
        executions itself posts with `post_now` before it exits."""
        self._source = source

    def post_now(self, seconds: float) -> int:
        """Post what waits, for at most `seconds` (backoff included); the number of events
        still waiting (the next `watch` posts them)."""
        deadline = self.clock() + seconds
        self._start_thread()
        while True:
            self._progress.clear()
            try:
                self.dispatch()
                left = self.waiting()
            except (StateError, OSError):
                return -1
            if not left or self.clock() >= deadline:
                return left
            self._progress.wait(min(0.2, max(0.0, deadline - self.clock())))

    def waiting(self) -> int:
        """How many events wait in the lanes, now."""
        total = 0
        for lane in list(self._lanes.values()):
            with lane.lock:
                lane.reader.refresh()
                total += lane.reader.count()
        return total

    def stop(self) -> None:
        """Stop posting; the deliveries under way are given STOP_WAIT seconds (what they do
        not finish is posted again after the restart)."""
        self._stopping.set()
        self._wake.set()
        for lane in list(self._lanes.values()):
            lane.wake.set()
        deadline = time.monotonic() + STOP_WAIT
        threads = [self._thread, *(lane.thread for lane in self._lanes.values())]
        for thread in threads:
            if thread is not None:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if any(thread is not None and thread.is_alive() for thread in threads):
            return  # still posting: its files stay open until the process ends
        for lane in self._lanes.values():
            lane.reader.close()
        self.outbox.close()

    # -- the notifier's thread: lanes found, trimmed, woken ----------------------------------

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(IDLE)
            self._wake.clear()
            try:
                self.dispatch()
            except Exception:  # a bug here must not end the deliveries for good
                log.exception("notifications: delivery failed; tried again in a moment")

    def dispatch(self) -> None:
        """Give every notification with events (declared, or found in the outbox) its lane,
        trim each lane to its cap, drop the events of notifications no longer declared, and
        wake the lanes. Never posts: a hanging receiver holds up only its own lane."""
        with self._dispatching:
            self._dispatch()

    def _dispatch(self) -> None:
        declared = self._manifests()
        if declared is None:
            return  # the first reconcile has not read the manifests yet
        try:
            found = set(lanes(self.storage, self.folder))
        except (StateError, OSError) as error:
            if self._listing_failed != str(error):
                log.error("notifications: cannot read the outbox: %s", error)
            self._listing_failed = str(error)
            return
        self._listing_failed = None
        wanted = {f"{scope}/{name}" for scope, name in declared.notifications}
        for to in sorted(found | wanted):
            if self._stopping.is_set():
                return
            lane = self._lane(to)
            if lane is None:
                continue
            notification = declared.notifications.get(_key(to))
            try:
                if notification is None:
                    self._forget(lane)
                else:
                    self._trim(lane, notification.manifest)
            except (StateError, OSError) as error:
                self._reading(lane, error)
                continue
            if notification is not None:
                if lane.thread is None:
                    lane.thread = threading.Thread(
                        target=self._serve, args=(lane,), name=f"notifier {to}", daemon=True
                    )
                    lane.thread.start()
                lane.wake.set()

    def _lane(self, to: str) -> _Lane | None:
        lane = self._lanes.get(to)
        if lane is None:
            try:
                reader = OutboxReader(self.storage, lane_folder(self.folder, to))
            except (StateError, OSError) as error:
                log.error("notification %s: cannot read its lane of the outbox: %s", to, error)
                return None
            lane = self._lanes[to] = _Lane(to, reader)
        return lane

    def _trim(self, lane: _Lane, notification: Notification) -> None:
        """Drop the oldest events of a lane fuller than its notification's cap."""
        cap = notification.spec.max_backlog
        with lane.lock:
            dropped = lane.reader.drop_oldest(cap, keep=lane.in_flight)
        if dropped:
            log.warning(
                "notification %s: %d undelivered event(s) dropped, the oldest: its lane holds at"
                " most %d (spec.maxBacklog) and %s has not taken them (%s); %d dropped in all",
                lane.to,
                dropped,
                cap,
                notification.spec.url,
                lane.failing or "it is slow",
                lane.reader.dropped,
            )
            self._progress.set()

    def _forget(self, lane: _Lane) -> None:
        """A notification no longer declared: its events are dropped, its lane removed."""
        if lane.in_flight is not None:
            return  # posting the last one it was given: looked at again on the next pass
        with lane.lock:
            waiting = lane.reader.undelivered()
            for entry in waiting:
                lane.reader.delivered(entry, "dropped: the notification is no longer declared")
        if waiting:
            log.warning(
                "notification %s is no longer declared: %d event(s) dropped (%s)",
                lane.to,
                len(waiting),
                ", ".join(sorted({str(e.event.get("type")) for e in waiting})),
            )
            self._progress.set()
        if waiting or self.storage.children(lane.reader.folder):  # gone already: no write
            with lane.lock:
                self.outbox.remove_lane(lane.reader)
        if lane.thread is None:
            del self._lanes[lane.to]  # a lane with a thread keeps it: the name may come back

    def _reading(self, lane: _Lane, error: Exception) -> None:
        if lane.reading_failed != str(error):
            log.error("notification %s: cannot read its lane of the outbox: %s", lane.to, error)
        lane.reading_failed = str(error)

    # -- a lane's thread ---------------------------------------------------------------------

    def _serve(self, lane: _Lane) -> None:
        while not self._stopping.is_set():
            now = self.clock()
            lane.wake.wait(lane.due - now if lane.due > now else IDLE)
            lane.wake.clear()
            try:
                self._deliver(lane)
            except Exception:  # a bug here must not end the lane's deliveries for good
                log.exception("notification %s: delivery failed; tried again in a moment", lane.to)

    def _deliver(self, lane: _Lane) -> None:
        """Post the lane's events in order, until one fails or none is left."""
        while not self._stopping.is_set() and lane.due <= self.clock():
            declared = self._manifests()
            found = None if declared is None else declared.notifications.get(_key(lane.to))
            if found is None:
                return  # not declared (now): the notifier's thread drops its events
            try:
                with lane.lock:
                    entry = lane.reader.oldest()
                    lane.in_flight = None if entry is None else entry.id
            except (StateError, OSError) as error:
                self._reading(lane, error)
                return
            lane.reading_failed = None
            if entry is None:
                return
            try:
                done = self._post(lane, entry, found.manifest)
            finally:
                lane.in_flight = None
            self._progress.set()
            if not done:
                return

    def _post(self, lane: _Lane, entry: Entry, notification: Notification) -> bool:
        """Post one event; True when it is done with (delivered or given up)."""
        spec = notification.spec
        try:
            headers = {h.name: self._value(h.value) for h in spec.headers}
        except SecretError as error:
            return self._retry(lane, f"a header's secret cannot be read: {error}")
        headers["Content-Type"] = CONTENT_TYPE
        body = json.dumps(entry.event, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(spec.url, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=spec.timeout.total_seconds()) as answer:
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (OSError, ValueError) as error:  # refused, unreachable, timed out, bad URL
            reason = getattr(error, "reason", None) or error
            return self._retry(lane, f"no answer from {spec.url} ({reason})")
        if 200 <= status < 300:
            self._record(lane, entry, f"delivered ({status})")
            self._count(lane, DELIVERED)
            if lane.failing is not None:
                log.info("notification %s: %s answers again", lane.to, spec.url)
            lane.failing, lane.backoff = None, FIRST_BACKOFF
            return True
        if status in RETRIED or status >= 500:
            return self._retry(lane, f"{spec.url} answered {status}")
        self._record(lane, entry, f"given up ({status})")
        self._count(lane, GIVEN_UP)
        log.error(
            "notification %s: %s answered %d to event %s; asking again would not change it,"
            " so it is given up (check the url and headers of the notification)",
            lane.to,
            spec.url,
            status,
            entry.event.get("type"),
        )
        return True

    def _record(self, lane: _Lane, entry: Entry, outcome: str) -> None:
        with lane.lock:
            lane.reader.delivered(entry, outcome)

    def _retry(self, lane: _Lane, why: str) -> bool:
        self._count(lane, FAILED)
        lane.due = self.clock() + lane.backoff
        if lane.failing != why:
            log.warning(
                "notification %s: %s; tried again in %gs, then less and less often (its"
                " events wait, in order, in the outbox)",
                lane.to,
                why,
                lane.backoff,
            )
        lane.failing = why
        lane.backoff = min(MAX_BACKOFF, lane.backoff * 2)
        return False

    def _value(self, value: str | SecretRef) -> str:
        return self.secrets.resolve(value) if isinstance(value, SecretRef) else value


def _key(to: str) -> tuple[str, str]:
    scope, _, name = to.partition("/")
    return scope, name
