"""`jobrunner watch`: reconcile on every change, fire schedules, react to device connects.

The daemon is the Runner's engine loop in the main thread, plus:

- a file watcher thread (watchfiles) that turns each debounced burst of changes under the
  jobs directory (a burst of saves, a `git pull`) into one reconcile on the engine thread;
- the scheduler: time schedules fire on time, a fire missed while the daemon was down runs
  once at start, a fire while the job runs is skipped (and logged);
- device-connect schedules: a target's BIRTH runs the job for that target only; while the
  job runs, such requests queue per device and run right after;
- requests handed over by `jobrunner start/stop/reconcile/approve` (see `handoff`).

SIGTERM or SIGINT stops dispatching, records the replies of requests in flight (for at most
DRAIN seconds; a second signal leaves at once) and exits 0 (EXIT_UNRECORDED when the state
could not be written); asynchronous operations still running on devices, and replies that did
not come, are taken up by the next start. The loop's waits are bounded (a signal is seen at
the next turn, whatever the machine's load); once the drain is over, a second signal leaves
at once, whatever closing waits on.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Protocol

from jobrunner.engine.core import executions
from jobrunner.engine.core.executions import DRAIN
from jobrunner.engine.core.runtime import RunningJob
from jobrunner.engine.link.events import DeviceConnected
from jobrunner.engine.link.observers import (
    FIRE_NOTHING_TO_DO,
    FIRE_SKIPPED_RUNNING,
    FIRE_STARTED,
    Observer,
    Observers,
)
from jobrunner.engine.planning.plan import JobPlan
from jobrunner.engine.rollout.approval import approval_view
from jobrunner.engine.rollout.gate import wave_not_reached
from jobrunner.engine.schedules.scheduler import Scheduler
from jobrunner.engine.service import handoff, heap, systemd
from jobrunner.engine.service.runner import Runner, RunnerConfig
from jobrunner.errors import JobError, JobrunnerError, LeaseLostError, NothingToDo, NotRunning
from jobrunner.manifests import ManifestSet, is_manifest_file, manifest_files
from jobrunner.manifests.fields import DOT_HINT
from jobrunner.manifests.ignore import IGNORE_FILE
from jobrunner.state.history import SWEEP
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import JobKey
from jobrunner.state.records import (
    ExecutionSummary,
    QueuedStart,
    StartOptions,
    Trigger,
    TriggerKind,
)
from jobrunner.state.registry import DeviceRegistry

log = logging.getLogger("jobrunner.watch")


def about(
    key: JobKey, execution: int | None = None, client_id: str | None = None
) -> dict[str, object]:
    """What a log record is about, for `extra=`: its fields in `watch --log-format json`."""
    fields: dict[str, object] = {"scope": key[0], "job": key[1]}
    if execution is not None:
        fields["execution"] = execution
    if client_id is not None:
        fields["clientId"] = client_id
    return fields


EXIT_UNRECORDED = 75
"""Exit status of a stop that could not record everything (the state could not be written):
EX_TEMPFAIL, so a service manager tells it from a clean stop (0) and a bug (70)."""
TICK = 0.5  # seconds: how often schedules and handed-over requests are looked at
CATCH_UP = 2.0  # seconds after start: a change made while the watcher was starting is seen
RESYNC = 300.0  # seconds: reconcile anyway now and then; a missed event costs nothing more
RELOAD = 3600.0
"""Seconds after which a reconcile reads every manifest again even when no file's size or
modification time changed (before that, the manifests read last are planned again: a resync
or a takeover costs the plan, not the parsing of a fleet's DeviceLists)."""
REPLAN_GAP = 2.0
"""Seconds between two reconciles for devices that connected: a burst of BIRTHs (a broker
restart) is one reconcile, not one per device."""


class Companion(Protocol):
    """What runs beside the daemon (the dashboard, the notifier): it hears the engine from
    the start, starts once the runner holds the state, and stops before the runner closes."""

    @property
    def observer(self) -> Observer: ...

    def start(self, daemon: Daemon) -> None: ...

    def stop(self) -> None: ...


class Daemon:
    def __init__(
        self,
        config: RunnerConfig,
        debounce_ms: int = 800,
        drain: float = DRAIN,
        companions: Sequence[Companion] = (),
    ) -> None:
        self.config = config
        self.debounce_ms = debounce_ms
        self.drain = drain
        self.companions = list(companions)
        self.stopping = threading.Event()
        self.scheduler = Scheduler()
        self.connect_queue: dict[JobKey, set[str]] = {}
        self.declared: dict[JobKey, JobPlan] = {}
        """The declared jobs as the last reconcile planned them (their targets and waves, for
        a first execution started by a schedule or a connect)."""
        self.loaded: ManifestSet | None = None
        """The manifests as the last reconcile read them."""
        self.turned_at = time.monotonic()
        """When the loop last turned (the health check and the systemd watchdog)."""
        self._changed = threading.Event()
        self._replan: str | None = None
        """Why the next turn reconciles although no file changed: a device connected that the
        last plan did not know, and a job that has no frozen targets may want it."""
        self._unplanned: list[tuple[JobKey, DeviceConnected]] = []
        """Device-connects a job could not take before that reconcile: taken right after."""
        self._reconciled_at = time.monotonic()
        self._swept_at = time.monotonic()
        """When the held jobs were last pruned for the retention's bound in time."""
        self._loaded_from: frozenset[tuple[str, int, int]] = frozenset()
        self._loaded_at = 0.0
        self._failing: dict[str, str] = {}
        self._leave = False
        self._closing = False
        self._signals: list[int] = []
        """Signals received, logged by the loop (a handler that logs could re-enter a write)."""
        self.exit_code = 0
        """0 after a clean stop; EXIT_UNRECORDED when the state could not be written."""
        self.runner: Runner | None = None

    # -- the main loop ---------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT (or `stop()`); 0 on a clean stop."""
        observer = Observers(*(c.observer for c in self.companions))
        with (
            Runner(self.config, role="watch", wait_for_broker=False, observer=observer) as runner,
            contextlib.ExitStack() as started,
        ):
            self.runner = runner
            for companion in self.companions:
                companion.start(self)
                started.callback(companion.stop)
            self._install_signals()
            runner.engine.connect_hooks.append(self._on_connect)
            runner.engine.let_go_hooks.append(self._let_go)
            runner.taken_hooks.append(self._taken)
            for problem in runner.unreadable:
                log.error("state: %s", problem)
            if "." in self.config.broker.client_id:
                log.warning("'.' in client id %s: %s", self.config.broker.client_id, DOT_HINT)
            for scope, name, execution in runner.resumed:
                self._watch_end(runner.reconciler.job(scope, name))
                log.info(
                    "resumed %s/%s execution %d",
                    scope,
                    name,
                    execution,
                    extra=about((scope, name), execution),
                )
            watcher = threading.Thread(
                target=self._watch_files, name="jobs-dir-watcher", daemon=True
            )
            watcher.start()
            seen = self._fingerprint()
            self._first_reconcile(started)
            resync_at = time.monotonic() + CATCH_UP
            catching_up = True
            systemd.notify("READY=1")
            while not self.stopping.is_set():
                runner.engine.step(TICK)
                self._log_signals()
                self.turned_at = time.monotonic()
                systemd.watchdog(self.turned_at)
                why = None
                if self._changed.is_set():
                    self._changed.clear()
                    why = "change in the jobs directory"
                elif (
                    self._replan is not None
                    and time.monotonic() >= self._reconciled_at + REPLAN_GAP
                ):
                    why, self._replan = self._replan, None
                elif time.monotonic() >= resync_at:
                    # Level-based: reconcile now and then whatever the watcher saw (it may
                    # have started after a change, or an event may have been lost).
                    why = "periodic resync"
                    if catching_up and "reconcile" not in self._failing:
                        # A full reconcile of a thousand jobs costs seconds of CPU; the
                        # catch-up is only for files changed while the watcher started.
                        catching_up = False
                        if self._fingerprint() == seen:
                            why = None
                            resync_at = time.monotonic() + RESYNC
                if why is not None:
                    catching_up = False
                    resync_at = time.monotonic() + RESYNC
                    self._safely("reconcile", functools.partial(self.reconcile, why))
                    self._safely("device-connect", self._connect_unplanned)
                self._safely("leases", runner.keep_leases)
                self._tick()
            self._drain(runner)  # then a second signal leaves at once, whatever waits on what
        self.runner = None
        return self.exit_code

    def _first_reconcile(self, started: contextlib.ExitStack[bool | None]) -> None:
        """The first reconcile; what it loaded (jobs, targets, devices) lives as long as the
        daemon, so that collections need not walk it again (see `heap`): frozen before the
        collector is on again, which would otherwise walk all of it at once."""
        with heap.loading():
            self._safely("reconcile", lambda: self.reconcile("start"))
            started.enter_context(heap.long_lived())

    def _tick(self) -> None:
        """What a turn looks at besides reconcile: each on its own, a failure of one never
        stops the others."""
        self._safely("schedules", self._fire_schedules)
        self._safely("requests", self._take_requests)
        self._safely("history", self._prune_history)

    def _drain(self, runner: Runner) -> None:
        """Send nothing more; record the replies of requests in flight, for at most
        `self.drain` seconds (under the unit's TimeoutStopSec) or until a second signal."""
        systemd.notify("STOPPING=1")
        self._log_signals()
        runner.engine.drain()
        waiting = runner.link.in_flight()
        if waiting:
            log.info(
                "stopping: nothing more is sent; waiting up to %gs for %d repl%s in flight"
                " (a second SIGTERM or Ctrl-C leaves at once)",
                self.drain,
                waiting,
                "y" if waiting == 1 else "ies",
            )
        deadline = time.monotonic() + self.drain
        while runner.link.in_flight() and time.monotonic() < deadline and not self._leave:
            runner.engine.step(0.1)
            self._log_signals()
        self._log_signals()
        runner.engine.step(0)  # record what the last turn queued
        left = runner.link.in_flight()
        problem = runner.engine.storage_problem
        self._closing = True  # from here on, a second signal leaves at once
        if problem is not None:
            unwritten = runner.engine.unwritten()
            log.error(
                "stopped, but the %s cannot be written (%s): what happened since is not"
                " recorded%s; %d repl%s in flight not received. A restart takes the jobs up"
                " from what was recorded: a request recorded is never sent again, and a reply"
                " not recorded counts as not received",
                runner.state.storage.kind,
                problem,
                f" (replies and transitions of {', '.join(unwritten)})" if unwritten else "",
                left,
                "y" if left == 1 else "ies",
            )
            self.exit_code = EXIT_UNRECORDED
            return
        awaited = sum(
            1
            for job in runner.engine.jobs.values()
            for target in job.state.targets
            if target.status.value == "AWAITING_COMPLETION"
        )
        log.info(
            "stopped: %s; %d asynchronous operation(s) still running on devices; the next"
            " start takes them up",
            f"{left} repl{'y' if left == 1 else 'ies'} not received (accepted until their"
            " deadline after the restart, never sent again)"
            if left
            else "every reply in flight was recorded",
            awaited,
        )

    # -- what the companions ask (from their own threads: plain values only) ----------------

    @property
    def client_id(self) -> str:
        return self.config.broker.client_id

    def broker_connected(self) -> bool:
        runner = self.runner
        return runner is not None and runner.engine.connection.connected

    def in_flight(self) -> int:
        runner = self.runner
        return runner.link.in_flight() if runner is not None else 0

    def storage_problem(self) -> str | None:
        runner = self.runner
        return runner.engine.storage_problem if runner is not None else None

    def last_turn(self) -> float:
        return self.turned_at

    def manifests(self) -> ManifestSet | None:
        return self.loaded

    def devices(self) -> DeviceRegistry | None:
        """The device registry as the engine holds it, copied at once (None: not running)."""
        runner = self.runner
        return runner.registry.copy() if runner is not None else None

    def held(self) -> dict[JobKey, JobState]:
        """The jobs the engine holds (none when not running): see `Runner.held`."""
        runner = self.runner
        return runner.held() if runner is not None else {}

    def stop(self) -> None:
        """Stop (from a signal handler too): nothing new is sent from this instant."""
        if self.runner is not None:
            self.runner.engine.drain()
        self.stopping.set()

    def _safely(self, what: str, action: Callable[[], None]) -> None:
        """A full disk or a damaged file fails this turn's `what`, never the daemon; the same
        failure is logged once, not every tick."""
        try:
            action()
        except LeaseLostError as lost:  # another runner owns those jobs now
            log.warning("%s failed: %s", what, lost)
            self._runner().engine.forget_lost(lost)
        except (OSError, JobrunnerError) as error:
            if self._failing.get(what) != str(error):
                self._failing[what] = str(error)
                log.error("%s failed: %s; tried again on the next change or tick", what, error)
        else:
            if self._failing.pop(what, None) is not None:
                log.info("%s works again", what)

    def _fingerprint(self) -> frozenset[tuple[str, int, int]]:
        """Each manifest file's path, size and modification time: what any edit, copy, move
        or checkout under the jobs directory changes."""
        found: set[tuple[str, int, int]] = set()
        ignore = self.config.jobs_dir / IGNORE_FILE
        for file in [*manifest_files([self.config.jobs_dir], []), ignore]:
            try:
                stat = file.stat()
            except OSError:
                continue  # gone since it was listed: the set differs anyway
            found.add((str(file), stat.st_size, stat.st_mtime_ns))
        return frozenset(found)

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handle(number: int, _frame: FrameType | None) -> None:
            # No logging here: the handler runs between two bytecodes of the main thread,
            # maybe inside a write of the log itself. The loop logs what was received.
            self._signals.append(number)
            if self._closing:  # all that could be recorded is: leaving loses nothing more
                os.write(
                    2, f"received {signal.Signals(number).name} again: leaving at once\n".encode()
                )
                os._exit(128 + number)
            if self.stopping.is_set():
                self._leave = True  # the second one: leave without waiting for replies
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def _log_signals(self) -> None:
        while self._signals:
            number = self._signals.pop(0)
            log.info("received %s", signal.Signals(number).name)

    # -- reconcile ---------------------------------------------------------------------------

    def reconcile(self, why: str) -> None:
        """Reconcile now (on the engine thread); every decision gets a log line."""
        with heap.loading():  # what it reads lives on: manifests, plan, jobs taken up
            self._reconcile(why)

    def _reconcile(self, why: str) -> None:
        runner = self._runner()
        self._reconciled_at = time.monotonic()
        manifests = self._manifests(fresh=why == "requested from the command line")
        for diagnostic in manifests.errors:
            log.error("manifest: %s", diagnostic)
        plan = runner.plan(manifests)
        applied = runner.apply(plan)
        self.declared = {(j.scope, j.name): j for j in plan.jobs if j.declared is not None}
        log.info(
            "reconciled revision %s (%s): %d job(s), %d changed, %d refused, %d started",
            plan.revision or "-",
            why,
            len(plan.jobs),
            len(applied.changed),
            len(applied.refused),
            len(applied.started),
        )
        for job_plan in plan.jobs:
            if job_plan.conflict is not None:
                # Every difference, each on its own line: the operator fixes them in one go.
                log.warning(
                    "conflict %s: %s",
                    job_plan.label,
                    "\n  ".join(job_plan.conflict.lines()),
                    extra=about((job_plan.scope, job_plan.name)),
                )
            for problem in job_plan.problems:
                log.warning(
                    "%s %s: %s",
                    job_plan.action.value,
                    job_plan.label,
                    problem,
                    extra=about((job_plan.scope, job_plan.name)),
                )
            if job_plan.start and job_plan.blocked:
                log.info(
                    "not started %s (%s): %s",
                    job_plan.label,
                    job_plan.start,
                    job_plan.blocked,
                    extra=about((job_plan.scope, job_plan.name)),
                )
        for scope, name, execution in applied.started:
            log.info(
                "started %s/%s execution %d: new run token",
                scope,
                name,
                execution,
                extra=about((scope, name), execution),
            )
        for done in applied.idle:
            log.info("new run token: %s", done)
        for scope, name, execution in applied.stopped:
            log.info(
                "stopping %s/%s execution %d",
                scope,
                name,
                execution,
                extra=about((scope, name), execution),
            )
        now = datetime.now(UTC)
        for key, job in runner.engine.jobs.items():
            self._watch_end(job)
            before = dict(job.state.record.schedules)
            self.scheduler.update(key, job.state.record, now)
            if job.state.record.schedules != before:
                job.state.save_record()

    def _manifests(self, fresh: bool) -> ManifestSet:
        """The manifests: read again when a file changed (its size or modification time),
        now and then whatever, and when asked (`fresh`); else those read last."""
        runner = self._runner()
        fingerprint = self._fingerprint()  # before reading: a change meanwhile is seen next
        now = time.monotonic()
        if (
            fresh
            or self.loaded is None
            or fingerprint != self._loaded_from
            or now >= self._loaded_at + RELOAD
        ):
            self.loaded = runner.load()
            self._loaded_from, self._loaded_at = fingerprint, now
        return self.loaded

    def _watch_files(self) -> None:
        """Turn changes under the jobs directory into reconciles, for as long as the daemon
        runs: a jobs directory that is missing, or removed and made again (a fresh clone),
        is waited for, never the end of the watching."""
        from watchfiles import watch

        folder = self.config.jobs_dir
        root = folder.resolve()

        def relevant(_change: object, path: str) -> bool:
            file = Path(path)
            try:  # hidden folders inside the jobs directory (.git) only, as the loader skips
                folders = file.resolve().relative_to(root).parts[:-1]
            except ValueError:
                folders = file.parts[:-1]
            if file.name == IGNORE_FILE:  # what is a manifest changed
                return True
            return is_manifest_file(file) and not any(p.startswith(".") for p in folders)

        missing_since: float | None = None
        while not self.stopping.is_set():
            if not folder.is_dir():
                if missing_since is None:
                    missing_since = time.monotonic()
                    log.warning(
                        "the jobs directory %s does not exist; no job is removed, and it is"
                        " watched for as soon as it appears",
                        folder,
                    )
                self.stopping.wait(1.0)
                continue
            if missing_since is not None:
                missing_since = None
                log.info("the jobs directory %s is there again", folder)
                self._changed.set()
            try:
                for _changes in watch(
                    folder,
                    watch_filter=relevant,
                    debounce=self.debounce_ms,
                    stop_event=self.stopping,
                    yield_on_timeout=False,
                    raise_interrupt=False,
                ):
                    self._changed.set()
            except (OSError, RuntimeError) as error:  # the folder went away while watched
                log.warning("watching %s stopped (%s); watching again", folder, error)
                self._changed.set()
                self.stopping.wait(1.0)

    # -- schedules ----------------------------------------------------------------------------

    def _fire_schedules(self) -> None:
        runner = self._runner()
        now = datetime.now(UTC)
        if not self.scheduler.may_be_due(now):
            return
        records = {key: job.state.record for key, job in runner.engine.jobs.items()}
        observer = runner.engine.rt.observer
        for key, name in self.scheduler.due(records, now):
            job = runner.engine.jobs[key]
            job.state.save_record()  # the fire is consumed, whatever happens next
            if job.state.running is not None:
                log.info(
                    "skipped schedule %s of %s/%s: execution %d is running",
                    name,
                    *key,
                    job.state.running.id,
                    extra=about(key, job.state.running.id),
                )
                observer.schedule_fired(key, FIRE_SKIPPED_RUNNING)
                continue
            reset = self.scheduler.resets(key, name)
            options = StartOptions(reset=True) if reset else None
            done = executions.nothing_to_do(job, None, options)
            if done is not None:  # an execution of no target would be history, and nothing else
                log.info("schedule %s of %s/%s: %s", name, *key, done, extra=about(key))
                observer.schedule_fired(key, FIRE_NOTHING_TO_DO)
                continue
            trigger = Trigger(kind=TriggerKind.SCHEDULE, detail=name, options=options)
            if self._start(job, trigger, None):
                observer.schedule_fired(key, FIRE_STARTED)

    def _prune_history(self) -> None:
        """Remove what the retention's bound in time (`keepFor`) let expire since the last
        pass: a look at the executions each held job has loaded, no read of the state;
        every SWEEP seconds (an execution that ends prunes its job at once)."""
        if time.monotonic() < self._swept_at + SWEEP:
            return
        self._swept_at = time.monotonic()
        runner = self._runner()
        now = datetime.now(UTC)
        for job in list(runner.engine.jobs.values()):
            pruned = job.state.prune(now)
            if pruned:
                log.info(
                    "%s: pruned %d execution(s) past the history's bounds (%s)",
                    job.label,
                    len(pruned),
                    ", ".join(map(str, pruned)),
                )

    def _on_connect(self, event: DeviceConnected) -> None:
        """Device-connect schedules: run the job for that one target, now or right after.

        A device the last plan did not know may be a target of a job whose targets are not
        frozen yet (one that waits for a target, or a device-connect job): the daemon plans
        again, and that job then starts, or takes the connect."""
        for key, planned in self.declared.items():
            if (
                key[0] == event.account
                and not planned.frozen
                and planned.start is not None
                and not planned.targets
            ):
                self._replan = f"{event.client_id} connected; {planned.label} waits for a target"
        for key in self.scheduler.connect_jobs():
            if key[0] == event.account:
                self._connect(key, event, replanned=False)

    def _connect_unplanned(self) -> None:
        """The connects that waited for the reconcile that just ran."""
        waiting, self._unplanned = self._unplanned, []
        for key, event in waiting:
            self._connect(key, event, replanned=True)

    def _connect(self, key: JobKey, event: DeviceConnected, replanned: bool) -> None:
        runner = self._runner()
        job = runner.engine.jobs.get(key)
        schedule = self.scheduler.wants_connect(key, datetime.now(UTC))
        if job is None or schedule is None:
            return
        reset = self.scheduler.resets(key, schedule)
        frozen = job.state.record.frozen
        planned = self.declared.get(key)
        targets = frozen.targets if frozen else (planned.targets if planned else [])
        if event.client_id not in targets:
            if frozen is None and not replanned:
                self._unplanned.append((key, event))
                self._replan = f"{event.client_id} connected; {job.label} may target it"
            return
        waves = frozen.waves if frozen else (planned.waves if planned else [])
        held = wave_not_reached(waves, job.state.record.rollout, event.client_id)
        if held is not None:
            log.info(
                "device-connect of %s for %s/%s not run: %s",
                event.client_id,
                *key,
                held,
                extra=about(key, client_id=event.client_id),
            )
            return
        known = event.client_id in job.state.targets
        target = job.state.targets.get(event.client_id) if known else None
        if frozen and target is not None and target.is_done(len(frozen.steps)) and not reset:
            return  # nothing for a target already done (a `reset` schedule runs it again)
        if job.state.running is not None:
            self.connect_queue.setdefault(key, set()).add(event.client_id)
            log.info(
                "queued device-connect of %s for %s/%s: execution %d is running",
                event.client_id,
                *key,
                job.state.running.id,
                extra=about(key, job.state.running.id, event.client_id),
            )
            return
        self._start(
            job,
            Trigger(
                kind=TriggerKind.DEVICE_CONNECT,
                detail=event.client_id,
                options=StartOptions(reset=True) if reset else None,
            ),
            [event.client_id],
        )

    def _taken(self, job: RunningJob) -> None:
        """A job taken over from another runner: its schedules and its end are ours now."""
        self._watch_end(job)
        before = dict(job.state.record.schedules)
        self.scheduler.update(job.key, job.state.record, datetime.now(UTC))
        if job.state.record.schedules != before:
            job.state.save_record()
        if job.run is not None:
            log.info(
                "resumed %s execution %d", job.label, job.run.id, extra=about(job.key, job.run.id)
            )
        self._changed.set()  # reconciled soon: its owner may have died before a change

    def _let_go(self, key: JobKey) -> None:
        """A job another runner owns now: nothing of it is ours any more."""
        self.scheduler.forget(key)
        self.connect_queue.pop(key, None)

    def _watch_end(self, job: RunningJob) -> None:
        if self._after_end not in job.on_end:
            job.on_end.append(self._after_end)

    def _after_end(self, summary: ExecutionSummary) -> None:
        """An execution ended: run the device-connect requests that queued meanwhile."""
        runner = self._runner()
        for key, waiting in list(self.connect_queue.items()):
            job = runner.engine.jobs.get(key)
            if job is None or job.state.running is not None or not waiting:
                continue
            del self.connect_queue[key]
            detail = ",".join(sorted(waiting))
            schedule = self.scheduler.wants_connect(key, datetime.now(UTC))
            reset = schedule is not None and self.scheduler.resets(key, schedule)
            options = StartOptions(reset=True) if reset else None
            trigger = Trigger(kind=TriggerKind.DEVICE_CONNECT, detail=detail, options=options)
            self._start(job, trigger, sorted(waiting))

    def _start(self, job: RunningJob, trigger: Trigger, only: list[str] | None) -> bool:
        """Start an execution of `job`; False (said in the log) when it could not."""
        runner = self._runner()
        planned = self.declared.get(job.key)
        if job.state.record.frozen is None and (planned is None or not planned.targets):
            log.info(
                "not started %s (%s): no target device is known yet",
                job.label,
                trigger,
                extra=about(job.key),
            )
            return False
        try:
            summary = runner.reconciler.start(
                job,
                trigger,
                revision=job.state.record.revision_applied,
                declared=planned.declared if planned else None,
                targets=planned.targets if planned else None,
                waves=planned.waves if planned else None,
                values=planned.values if planned else None,
                only=only,
            )
        except JobError as error:
            log.warning("not started %s (%s): %s", job.label, trigger, error, extra=about(job.key))
            return False
        self._watch_end(job)
        log.info(
            "started %s execution %d: %s",
            job.label,
            summary.id,
            trigger,
            extra=about(job.key, summary.id),
        )
        return True

    # -- requests from the command line ------------------------------------------------------

    def _take_requests(self) -> None:
        runner = self._runner()
        for request in handoff.pending(runner.state, self.config.broker.client_id):
            try:
                result = self._serve(request)
            except JobrunnerError as error:
                handoff.answer(runner.state, request, error=str(error))
            except Exception as error:  # every request gets an answer: its command waits
                log.exception(
                    "request %s %s/%s failed", request.action, request.scope, request.name
                )
                handoff.answer(
                    runner.state, request, error=f"the watch daemon failed: {error}; see its log"
                )
            else:
                handoff.answer(runner.state, request, result=result)

    def _serve(self, request: handoff.Request) -> dict[str, object]:
        runner = self._runner()
        if request.action == "reconcile":
            before = {k: (j.run.id if j.run else None) for k, j in runner.engine.jobs.items()}
            self.reconcile("requested from the command line")
            started = [
                [k[0], k[1], j.run.id]
                for k, j in runner.engine.jobs.items()
                if j.run is not None and before.get(k) != j.run.id
            ]
            return {"started": started}
        assert request.scope is not None and request.name is not None
        if request.action == "approve":
            given = runner.approve_wave(request.scope, request.name, request.wave, request.by)
            if not given.already:
                log.info(
                    "wave %s of %s/%s approved by %s (from the command line)",
                    given.wave,
                    request.scope,
                    request.name,
                    given.by,
                    extra=about((request.scope, request.name)),
                )
            return {"approved": approval_view(given)}
        if request.action == "start":
            options = StartOptions(reset=request.reset, from_step=request.from_step)
            try:
                begun = runner.start_job(
                    request.scope,
                    request.name,
                    runner.load(),
                    list(request.targets) or None,
                    options=options,
                    enqueue=request.enqueue,
                )
            except NothingToDo as nothing:
                log.info(
                    "start of %s/%s: %s",
                    request.scope,
                    request.name,
                    nothing,
                    extra=about((request.scope, request.name)),
                )
                return {"started": [], "nothing": str(nothing)}
            job = runner.engine.jobs[(request.scope, request.name)]
            self._watch_end(job)
            if isinstance(begun, QueuedStart):
                running = job.state.running
                behind = running.id if running is not None else 0
                return {"queued": [request.scope, request.name, behind, begun.id]}
            log.info(
                "started %s/%s execution %d: %s (from the command line)",
                request.scope,
                request.name,
                begun.id,
                begun.trigger,
                extra=about((request.scope, request.name), begun.id),
            )
            return {"started": [[request.scope, request.name, begun.id]]}
        try:
            summary = runner.stop_job(
                request.scope,
                request.name,
                "stopped by the user",
                cancel=request.cancel,
                drain=DRAIN if request.drain is None else request.drain,
            )
        except NotRunning as nothing:
            return {"stopped": [], "nothing": str(nothing)}
        log.info(
            "stopping %s/%s execution %d (from the command line)",
            request.scope,
            request.name,
            summary.id,
            extra=about((request.scope, request.name), summary.id),
        )
        return {"stopped": [[request.scope, request.name, summary.id]]}

    def _runner(self) -> Runner:
        assert self.runner is not None, "the daemon is not running"
        return self.runner
