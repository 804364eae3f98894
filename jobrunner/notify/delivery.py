"""Posting the outbox: each notification's events in order, retried with backoff.

`Notifier` is a companion of `jobrunner watch`: its observer (`events`) writes to the outbox
on the engine's thread, and its own thread posts. A receiver that is down, slow or refusing
delays only its own notification's events (in order: the next waits for the one before),
never the engine, nor another notification. What was not delivered when the runner stops
(or is killed) is posted after its restart.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from jobrunner.errors import SecretError, StateError
from jobrunner.manifests import ManifestSet
from jobrunner.manifests.notification import Notification
from jobrunner.manifests.secrets import SecretRef, SecretResolver
from jobrunner.notify.events import NotificationEvents
from jobrunner.state.layout import StateDir
from jobrunner.state.outbox import Entry, OutboxReader, OutboxWriter

log = logging.getLogger("jobrunner.notify")

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 300.0
IDLE = 1.0  # seconds between looks at the outbox when nothing woke the sender
STOP_WAIT = 2.0  # seconds a stopping daemon waits for a delivery under way
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
RETRIED = frozenset({408, 425, 429})


class ManifestSource(Protocol):
    """The daemon, as the notifier asks it."""

    @property
    def client_id(self) -> str: ...

    def manifests(self) -> ManifestSet | None: ...


@dataclass
class _Queue:
    """Where one notification's delivery stands."""

    due: float = 0.0
    backoff: float = FIRST_BACKOFF
    failing: str | None = None


class Notifier:
    """Delivers the events of the Notification manifests, at least once."""

    def __init__(
        self,
        state: StateDir | Path,
        secrets: SecretResolver,
        client_id: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        layout = state if isinstance(state, StateDir) else StateDir(state)
        # Runners that share a database keep an outbox each: each posts the events it wrote.
        folder = layout.owners.outbox(client_id)
        self.secrets = secrets
        self.clock = clock
        self.reader = OutboxReader(layout.storage, folder)
        self.writer = OutboxWriter(layout.storage, folder)
        self._source: ManifestSource | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._queues: dict[str, _Queue] = {}
        self._reading_failed: str | None = None
        self.observer = NotificationEvents(self.writer, self._manifests, client_id, self._wake.set)

    def _manifests(self) -> ManifestSet | None:
        return self._source.manifests() if self._source is not None else None

    def start(self, daemon: ManifestSource) -> None:
        """Post from a thread of its own, for as long as the daemon runs."""
        self._source = daemon
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self._thread.start()

    def attach(self, source: ManifestSource) -> None:
        """Route events by `source`'s manifests, without a thread: a command that runs
        executions itself posts with `post_now` before it exits."""
        self._source = source

    def post_now(self, seconds: float) -> int:
        """Post what waits, for at most `seconds` (backoff included); the number of events
        still waiting (the next `watch` posts them)."""
        deadline = self.clock() + seconds
        while True:
            self.deliver_due()
            try:
                left = len(self.reader.undelivered())
            except (StateError, OSError):
                return -1
            if not left or self.clock() >= deadline:
                return left
            time.sleep(min(0.2, max(0.0, deadline - self.clock())))

    def stop(self) -> None:
        """Stop posting; a delivery under way is given STOP_WAIT seconds (what it does not
        finish is posted again after the restart)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT)
            if self._thread.is_alive():
                return  # still posting: its files stay open until the process ends
        self.reader.close()
        self.writer.close()

    # -- the sender's thread ----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(IDLE)
            self._wake.clear()
            try:
                self.deliver_due()
            except Exception:  # a bug here must not end the deliveries for good
                log.exception("notifications: delivery failed; tried again in a moment")

    def deliver_due(self) -> None:
        """Post, for every notification whose turn it is, its events in order, until one
        fails or none is left."""
        declared = self._manifests()
        if declared is None:
            return  # the first reconcile has not read the manifests yet
        try:
            waiting = self.reader.undelivered()
        except (StateError, OSError) as error:
            if self._reading_failed != str(error):
                log.error("notifications: cannot read the outbox: %s", error)
            self._reading_failed = str(error)
            return
        self._reading_failed = None
        blocked: set[str] = set()
        for entry in waiting:
            if self._stopping.is_set():
                return
            if entry.to in blocked:
                continue
            queue = self._queues.setdefault(entry.to, _Queue())
            if queue.due > self.clock():
                blocked.add(entry.to)
                continue
            notification = declared.notifications.get(_key(entry.to))
            if notification is None:
                self.reader.delivered(entry, "dropped: the notification is no longer declared")
                log.warning(
                    "notification %s is no longer declared: event %s dropped",
                    entry.to,
                    entry.event.get("type"),
                )
                continue
            if not self._post(entry, notification.manifest, queue):
                blocked.add(entry.to)

    def _post(self, entry: Entry, notification: Notification, queue: _Queue) -> bool:
        """Post one event; True when it is done with (delivered or given up)."""
        spec = notification.spec
        try:
            headers = {h.name: self._value(h.value) for h in spec.headers}
        except SecretError as error:
            return self._retry(entry, queue, f"a header's secret cannot be read: {error}")
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
            return self._retry(entry, queue, f"no answer from {spec.url} ({reason})")
        if 200 <= status < 300:
            self.reader.delivered(entry, f"delivered ({status})")
            if queue.failing is not None:
                log.info("notification %s: %s answers again", entry.to, spec.url)
            queue.failing, queue.backoff = None, FIRST_BACKOFF
            return True
        if status in RETRIED or status >= 500:
            return self._retry(entry, queue, f"{spec.url} answered {status}")
        self.reader.delivered(entry, f"given up ({status})")
        log.error(
            "notification %s: %s answered %d to event %s; asking again would not change it,"
            " so it is given up (check the url and headers of the notification)",
            entry.to,
            spec.url,
            status,
            entry.event.get("type"),
        )
        return True

    def _retry(self, entry: Entry, queue: _Queue, why: str) -> bool:
        queue.due = self.clock() + queue.backoff
        if queue.failing != why:
            log.warning(
                "notification %s: %s; tried again in %gs, then less and less often (its"
                " events wait, in order, in the outbox)",
                entry.to,
                why,
                queue.backoff,
            )
        queue.failing = why
        queue.backoff = min(MAX_BACKOFF, queue.backoff * 2)
        return False

    def _value(self, value: str | SecretRef) -> str:
        return self.secrets.resolve(value) if isinstance(value, SecretRef) else value


def _key(to: str) -> tuple[str, str]:
    scope, _, name = to.partition("/")
    return scope, name
