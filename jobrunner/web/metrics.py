"""`/metrics`: the names and labels of DESIGN §7, with no client id in any label.

Two sources. What the engine does (requests, their durations, anomalies) is counted as it
happens by `EngineMetrics`, an engine observer; what the state holds (targets by status,
executions, devices, the notifications' outbox) is read when Prometheus scrapes, by
`FleetCollector`, from the same followed copy of the state the pages show (the outbox: as
the runner wrote it, per notification). Series per job are bounded by the jobs declared
(per schedule: by their schedules; a rollout: one series, its state and wave now), per
application by the Kura applications the runner speaks to, per outcome and kind by fixed
lists. The notifier's posts by outcome are counted by the notifier itself, and read here.

A schedule's next fire is the one due after its last fire (or since it was applied): a
timestamp that falls behind the present says a schedule that does not fire.
"""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jobrunner import __version__
from jobrunner.engine.link.observers import Observer
from jobrunner.engine.schedules.scheduler import schedules_of
from jobrunner.engine.status import backlog_view
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import JobKey
from jobrunner.state.records import ExecutionStatus
from jobrunner.state.registry import DeviceStatus
from jobrunner.state.targets import TargetStatus
from jobrunner.web.reader import FleetReader

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Seconds: a configuration read answers in tens of milliseconds, a package install's
acknowledgement in seconds, a request to a sleepy cellular gateway in tens of seconds."""
INBOUND_LANES = ("replies", "lifecycle")
"""The lanes of received messages (jobrunner.device.handover.Lane)."""
NOTIFICATION_OUTCOMES = ("delivered", "failed", "given-up")
"""What became of a post (jobrunner.notify.delivery.OUTCOMES): at 0 from the start."""
MAX_TIMED = 100_000
"""Requests whose send time is kept for their duration: a reply never heard of (a request
cancelled by a stop) must not grow the table for ever."""


class EngineMetrics(Observer):
    """Requests, their durations and anomalies, as the engine sees them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "jobrunner_requests",
            "Requests to devices by Kura application and outcome (ok, error, unreadable, timeout).",
            ["app", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "jobrunner_request_duration_seconds",
            "Seconds from a request's publication to its reply, by Kura application.",
            ["app"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.anomalies = Counter(
            "jobrunner_anomalies",
            "Messages ignored (late, duplicate or stray replies, unreadable payloads...).",
            ["kind"],
            registry=registry,
        )
        self.inbound_dropped_messages = Counter(
            "jobrunner_inbound_dropped",
            "Messages from the broker dropped unread, because too many were waiting to be read"
            " (lane: replies, which include notifications, or lifecycle: BIRTH, APPS, DC, LWT).",
            ["lane"],
            registry=registry,
        )
        for lane in INBOUND_LANES:  # at 0 from the start: an alert sees the first drop
            self.inbound_dropped_messages.labels(lane)
        self.schedule_fires = Counter(
            "jobrunner_schedule_fires",
            "Fires of each job's time schedules by what they did (started, nothing-to-do:"
            " every target was done, skipped-running: an execution was running).",
            ["scope", "job", "result"],
            registry=registry,
        )
        self.rollbacks = Counter(
            "jobrunner_rollbacks",
            "Rollbacks of targets to their configuration snapshot by how they ended (done:"
            " read back as the snapshot holds it; gone: the device no longer keeps the"
            " snapshot; failed: refused, or the values read back are not the snapshot's).",
            ["scope", "job", "result"],
            registry=registry,
        )
        self._sent: dict[str, float] = {}
        self._lock = threading.Lock()

    def request_sent(self, request_id: str, app_id: str) -> None:
        with self._lock:
            if len(self._sent) >= MAX_TIMED:
                self._sent.clear()  # durations of the oldest are lost, never the counts
            self._sent[request_id] = time.monotonic()

    def request_unsent(self, request_id: str) -> None:
        with self._lock:
            self._sent.pop(request_id, None)

    def request_ended(self, request_id: str, app_id: str, outcome: str) -> None:
        with self._lock:
            sent = self._sent.pop(request_id, None)
        self.requests.labels(app_id, outcome).inc()
        if sent is not None and outcome != "timeout":
            self.duration.labels(app_id).observe(time.monotonic() - sent)

    def anomaly(self, kind: str) -> None:
        self.anomalies.labels(kind).inc()

    def inbound_dropped(self, lane: str) -> None:
        self.inbound_dropped_messages.labels(lane).inc()

    def schedule_fired(self, job: JobKey, result: str) -> None:
        self.schedule_fires.labels(job[0], job[1], result).inc()

    def rollback_ended(self, job: JobKey, client_id: str, result: str) -> None:
        self.rollbacks.labels(job[0], job[1], result).inc()


class RunnerFacts(Protocol):
    """What the running daemon tells about itself (its broker connection, its window)."""

    @property
    def client_id(self) -> str: ...

    def broker_connected(self) -> bool: ...

    def in_flight(self) -> int: ...


Posts = Callable[[], Mapping[tuple[str, str], int]]
"""The notifier's posts since the start by (notification, outcome)."""


class FleetCollector(Collector):
    """Targets, executions and devices as recorded, collected at each scrape."""

    def __init__(
        self,
        reader: FleetReader,
        facts: RunnerFacts,
        posts: Posts | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.reader = reader
        self.facts = facts
        self.posts = posts
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        build = GaugeMetricFamily(
            "jobrunner_build_info",
            "The running jobrunner's version (always 1).",
            labels=["version"],
        )
        build.add_metric([__version__], 1)
        yield build
        jobs = self.reader.jobs()
        targets = GaugeMetricFamily(
            "jobrunner_targets", "Targets of each job by status.", labels=["scope", "job", "status"]
        )
        executions = CounterMetricFamily(
            "jobrunner_executions",
            "Ended executions of each job by status (TERMINATED, STOPPED, ABORTED).",
            labels=["scope", "job", "status"],
        )
        running = GaugeMetricFamily(
            "jobrunner_executions_running",
            "Executions of each job running now (0 or 1).",
            labels=["scope", "job"],
        )
        for job in jobs:
            scope, name = job.key
            counts = job.counts()
            for status in TargetStatus:
                targets.add_metric([scope, name, status.value], counts.get(status.value, 0))
            # Counted as they end, not read again: a job that ran for a year has a million.
            ended = job.executions.ended
            # A counter never goes down: a RUNNING execution is the gauge's, not the counter's.
            for execution_status in ExecutionStatus:
                if execution_status is not ExecutionStatus.RUNNING:
                    value = ended.get(execution_status.value, 0)
                    executions.add_metric([scope, name, execution_status.value], value)
            running.add_metric([scope, name], 0 if job.running is None else 1)
        yield targets
        yield executions
        yield running
        yield from self._rollouts_and_schedules(jobs)
        devices = GaugeMetricFamily(
            "jobrunner_devices", "Devices known by connection state.", labels=["scope", "state"]
        )
        registry = self.reader.registry()
        for scope in registry.scopes():
            states = Tally(record.status.value for record in registry.scope(scope))
            for state in DeviceStatus:
                devices.add_metric([scope, state.value], states.get(state.value, 0))
        yield devices
        yield from self._backlog()
        yield GaugeMetricFamily(
            "jobrunner_in_flight", "Requests awaiting a reply.", value=self.facts.in_flight()
        )
        yield GaugeMetricFamily(
            "jobrunner_broker_connected",
            "1 while the runner is connected and subscribed to its broker, else 0.",
            value=1.0 if self.facts.broker_connected() else 0.0,
        )

    def _rollouts_and_schedules(self, jobs: list[JobState]) -> Iterator[Metric]:
        rollouts = GaugeMetricFamily(
            "jobrunner_rollout_state",
            "Where each job's rollout stands (always 1): its state (pending, running, waiting,"
            " soaking, awaiting-approval, passed, aborted) and its current wave.",
            labels=["scope", "job", "state", "wave"],
        )
        fires = GaugeMetricFamily(
            "jobrunner_schedule_next_fire_timestamp_seconds",
            "When each time schedule fires next (Unix time): the fire due after its last one."
            " Behind the present: a schedule that does not fire.",
            labels=["scope", "job", "schedule"],
        )
        now = self.clock()
        for job in jobs:
            scope, name = job.key
            record = job.record
            if record.rollout is not None:
                rollout = record.rollout
                rollouts.add_metric([scope, name, rollout.status.value, rollout.wave or ""], 1)
            if record.suspend or record.orphaned:
                continue  # its schedules do not fire, on purpose
            for schedule, trigger in schedules_of(record).times.items():
                fired = record.schedules.get(schedule)
                since = (fired.last_fire or fired.since) if fired is not None else None
                upcoming = trigger.next(since or now)
                if upcoming is not None:
                    fires.add_metric([scope, name, schedule], upcoming.timestamp())
        yield rollouts
        yield fires

    def _backlog(self) -> Iterator[Metric]:
        """This runner's outbox, by notification (its lanes: bounded by the declared ones)."""
        waiting = GaugeMetricFamily(
            "jobrunner_outbox_events",
            "Notification events not delivered yet, by notification (SCOPE/NAME).",
            labels=["notification"],
        )
        oldest = GaugeMetricFamily(
            "jobrunner_outbox_oldest_age_seconds",
            "Seconds since the oldest undelivered event of each notification happened"
            " (0: none waits).",
            labels=["notification"],
        )
        dropped = CounterMetricFamily(
            "jobrunner_notifications_dropped",
            "Undelivered events dropped, the oldest first, because the notification's lane"
            " held its maxBacklog.",
            labels=["notification"],
        )
        posts = CounterMetricFamily(
            "jobrunner_notifications",
            "Posts of each notification's events since the start, by outcome (delivered,"
            " failed: tried again later, given-up: refused with a 4xx).",
            labels=["notification", "outcome"],
        )
        counted = dict(self.posts()) if self.posts is not None else {}
        notifications = {to for to, _ in counted}
        for row in backlog_view(self.reader.state, self.facts.client_id):
            label = [row["notification"]]
            notifications.add(row["notification"])
            waiting.add_metric(label, row["undelivered"])
            oldest.add_metric(label, row["oldestAgeSeconds"] or 0.0)
            dropped.add_metric(label, row["dropped"])
        for to in sorted(notifications):
            for outcome in NOTIFICATION_OUTCOMES:
                posts.add_metric([to, outcome], counted.get((to, outcome), 0))
        yield waiting
        yield oldest
        yield dropped
        yield posts
