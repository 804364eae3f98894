"""The scenarios of the benchmark; each returns rows of the table (see `report`)."""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bench import manifests
from bench.measure import (
    JOBRUNNER,
    PYTHON,
    Finished,
    FleetProcess,
    child_environment,
    cpu_of,
    folder_size,
    run,
)
from bench.report import Row
from jobrunner.engine.service.daemon import RESYNC
from jobrunner.simulator.broker import RunningBroker

SCOPE = "bench"
SYNC_STEPS = 3
MB = 1_000_000
MEMORY_PER_TARGET = 2_000
"""Bytes of Python heap per target the runner may use at its peak (loopback, 3 sync steps)."""


@contextmanager
def workspace(name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"jobrunner-bench-{name}-") as folder:
        yield Path(folder)


# --- the floor and the synchronous rollout, measured alternately ---------------------------


def floor_once(broker: RunningBroker, devices: int, window: int) -> Finished:
    command = [PYTHON, "-m", "bench.floor", "--broker", broker.url, "--devices", str(devices)]
    return run([*command, "--window", str(window)]).check()


def reconcile(broker: RunningBroker, jobs: Path, state: Path, cwd: Path) -> Finished:
    """`jobrunner reconcile --wait` with the stock settings, as a process of its own (the
    state directory made first if it is new, as `jobrunner init` would)."""
    state.mkdir(parents=True, exist_ok=True)
    command = [
        *JOBRUNNER, "reconcile", "--wait", "--jobs-dir", str(jobs), "--state-dir", str(state),
        "--scope", SCOPE, "--broker", broker.url, "--client-id", "bench-runner",
    ]  # fmt: skip
    return run(command, cwd=cwd)


class Others:
    """CPU seconds the broker and the fleet use while something else is measured."""

    def __init__(self, broker: RunningBroker, fleet: FleetProcess) -> None:
        process = broker._process
        self.pids = [fleet.process.pid] + ([process.pid] if process is not None else [])
        self.used: dict[str, list[float]] = {}

    @contextmanager
    def measuring(self, label: str) -> Iterator[None]:
        before = [cpu_of(pid) for pid in self.pids]
        yield
        after = [cpu_of(pid) for pid in self.pids]
        spent = [round(a - b, 2) for a, b in zip(after, before, strict=True)]
        self.used.setdefault(label, []).extend(spent)


def sync_and_floor(
    broker: RunningBroker, fleet: FleetProcess, devices: int, windows: list[int], repeat: int
) -> tuple[list[Row], dict[str, object]]:
    """The floor at each window and `reconcile --wait` of the 3-step job, `repeat` times each,
    alternating (so that both see the same machine); the best time of each counts."""
    floors: dict[int, list[float]] = {w: [] for w in windows}
    floor_rss = 0
    runs: list[tuple[Finished, int, int]] = []
    details: dict[str, object] = {}
    others = Others(broker, fleet)
    with workspace("sync") as root:
        jobs = manifests.rollout(root / "jobs.d", SCOPE, devices, manifests.SYNC_STEPS, "sync-3")
        for attempt in range(repeat):
            for window in windows:
                with others.measuring(f"floor-{window}"):
                    done = floor_once(broker, devices, window)
                floors[window].append(float(json.loads(done.stdout)["seconds"]))
                floor_rss = max(floor_rss, done.peak_rss)
            state = root / f"state-{attempt}"
            with others.measuring("reconcile"):
                done = reconcile(broker, jobs, state, root)
            expected = f"TERMINATED ({devices} PROCESS_OK)"
            if done.returncode != 0 or expected not in done.stdout:
                raise RuntimeError(f"sync rollout did not end {expected}:\n{done.stdout[-500:]}")
            size = folder_size(state)
            runs.append((done, size.bytes, size.files))
            details["state_files"] = size.files
            details["largest_files"] = size.largest
    best_window = min(windows, key=lambda w: min(floors[w]))
    floor = min(floors[best_window])
    best, state_bytes, _ = min(runs, key=lambda r: r[0].seconds)
    requests = devices * SYNC_STEPS
    details.update(
        floor_by_window={w: [round(s, 2) for s in floors[w]] for w in windows},
        runner_seconds=[round(r[0].seconds, 2) for r in runs],
        runner_cpu_seconds=[round(r[0].cpu, 2) for r in runs],
        runner_peak_rss=[r[0].peak_rss for r in runs],
        fleet_and_broker_cpu_seconds=others.used,
    )
    rows = [
        Row(
            "floor: bare paho + protobuf, 3 sync steps",
            devices,
            floor=floor,
            ops=requests / floor,
            peak_rss=floor_rss,
            note=f"best window {best_window} of {windows}; records nothing;"
            f" fleet, broker CPU: {others.used[f'floor-{best_window}'][:2]} s",
        ),
        Row(
            "reconcile --wait, 3 sync steps",
            devices,
            runner=best.seconds,
            floor=floor,
            ops=requests / best.seconds,
            peak_rss=max(r[0].peak_rss for r in runs),
            state=state_bytes,
            target="<= 1.5x floor",
            holds=best.seconds <= 1.5 * floor,
            note=f"process start to exit; {best.cpu:.1f} s CPU; window 200 (default);"
            f" fleet, broker CPU: {others.used['reconcile'][:2]} s",
        ),
        Row(
            "peak memory of the runner",
            devices,
            peak_rss=max(r[0].peak_rss for r in runs),
            target="<= 300 MB",
            holds=max(r[0].peak_rss for r in runs) <= 300 * MB,
            note="RSS of the reconcile process (wait4)",
        ),
        Row(
            "disk: state directory after the execution",
            devices,
            state=state_bytes,
            target="< 20 MB",
            holds=state_bytes < 20 * MB,
            note=f"{runs[0][2]} files",
        ),
    ]
    return rows, details


def async_rollout(broker: RunningBroker, devices: int, version: str) -> Row:
    """10,000 targets x Package Download / Install: every target must end PROCESS_OK."""
    steps = manifests.ASYNC_STEPS.replace("version: 2.4.0", f"version: {version}")
    with workspace("async") as root:
        jobs = manifests.rollout(root / "jobs.d", SCOPE, devices, steps, "install-agent")
        done = reconcile(broker, jobs, root / "state", root)
        size = folder_size(root / "state")
    expected = f"TERMINATED ({devices} PROCESS_OK)"
    ok = done.returncode == 0 and expected in done.stdout
    return Row(
        "reconcile --wait, 1 async step (download+install)",
        devices,
        runner=done.seconds,
        ops=devices / done.seconds,
        peak_rss=done.peak_rss,
        state=size.bytes,
        target="all PROCESS_OK",
        holds=ok,
        note="simulated download 2 s + install 0.5 s per device; ops = targets/s",
    )


# --- without devices: the engine over a loopback session ------------------------------------


def loopback(targets: int, trace: bool = False) -> tuple[Finished, dict[str, float]]:
    command = [PYTHON, "-m", "bench.loopback", "--targets", str(targets)]
    done = run([*command, *(["--trace-memory"] if trace else [])], timeout=1800).check()
    return done, json.loads(done.stdout.strip().splitlines()[-1])


def memory_scaling(sizes: list[int]) -> tuple[list[Row], dict[str, object]]:
    """Peak RSS of the runner holding N targets through a whole 3-step execution, without
    devices (requests answered in-process), and bytes written per target transition."""
    results = {n: loopback(n) for n in sizes}
    rows = []
    for n, (done, data) in results.items():
        rows.append(
            Row(
                "engine without devices (loopback), 3 sync steps",
                n,
                runner=float(data["run_seconds"]) + float(data["prepare_seconds"]),
                ops=float(data["requests"]) / float(data["run_seconds"]),
                peak_rss=done.peak_rss,
                state=int(data["state_bytes"]),
                note=(
                    f"{data['run_cpu_us_per_request']:.0f} us CPU/request;"
                    f" {data['bytes_written_per_transition']:.0f} B and"
                    f" {data['writes_per_transition']:.3f} write calls per transition;"
                    f" {data['rewrites_per_transition']:.5f} rewrites per transition;"
                    f" journal replay {data['replay_seconds']:.2f} s"
                ),
            )
        )
    small, large = min(sizes), max(sizes)
    slope = (results[large][0].peak_rss - results[small][0].peak_rss) / (large - small)
    middle = sorted(sizes)[len(sizes) // 2]
    slopes = []
    if small < middle < large:
        slopes = [
            (results[middle][0].peak_rss - results[small][0].peak_rss) / (middle - small),
            (results[large][0].peak_rss - results[middle][0].peak_rss) / (large - middle),
        ]
    linear = not slopes or max(slopes) <= 1.5 * min(slopes)
    traced = {n: loopback(n, trace=True)[1] for n in (small, large)}

    def per_target(key: str) -> float:
        grown = float(traced[large][key]) - float(traced[small][key])
        return grown / (large - small)

    peak = float(traced[large]["heap_peak_bytes"]) / large
    rows.append(
        Row(
            "memory per target (Python heap at its peak, loopback)",
            large,
            target=f"<= {MEMORY_PER_TARGET:,} B",
            holds=peak <= MEMORY_PER_TARGET,
            note=f"{peak:,.0f} B per target: the most the heap held (tracemalloc) over the whole"
            f" command, manifests, plan, execution and journal; at {small:,} targets"
            f" {float(traced[small]['heap_peak_bytes']) / small:,.0f} B",
        )
    )
    rows.append(
        Row(
            "state held per target after the execution",
            large,
            note=f"Python heap (tracemalloc) at {small:,} / {large:,} targets: engine state"
            f" {float(traced[small]['engine_bytes']) / MB:.1f} /"
            f" {float(traced[large]['engine_bytes']) / MB:.1f} MB"
            f" ({per_target('engine_bytes'):,.0f} B per target); with the parsed manifests"
            f" and plan still held, as `reconcile` holds them,"
            f" {per_target('heap_live_bytes'):,.0f} B per target; heap peak"
            f" {per_target('heap_peak_bytes'):,.0f} B per target",
        )
    )
    per_transition = [float(results[n][1]["bytes_written_per_transition"]) for n in sizes]
    constant_io = max(per_transition) <= 1.2 * min(per_transition)
    rows.append(
        Row(
            f"memory growth {small:,} -> {large:,} targets",
            large,
            peak_rss=results[large][0].peak_rss,
            target="linear",
            holds=linear,
            note=f"{slope:,.0f} B per target"
            + (f" (segments: {', '.join(f'{s:,.0f}' for s in slopes)} B)" if slopes else ""),
        )
    )
    rows.append(
        Row(
            "disk: I/O per status transition",
            large,
            target="O(1)",
            holds=constant_io,
            note="bytes written per transition at "
            + ", ".join(f"{n:,}: {b:.0f}" for n, b in zip(sizes, per_transition, strict=True)),
        )
    )
    details: dict[str, object] = {str(n): data for n, (_, data) in results.items()}
    return rows, details


# --- many jobs: plan, no-change reconcile, the idle daemon ----------------------------------


def many_jobs(
    broker: RunningBroker, devices: int, jobs: int, idle_seconds: float
) -> tuple[list[Row], dict[str, object]]:
    rows: list[Row] = []
    details: dict[str, object] = {}
    with workspace("jobs") as root:
        now = datetime.now(UTC)
        folder = manifests.many_jobs(root / "jobs.d", SCOPE, devices, jobs, now)
        state = root / "state"
        state.mkdir()  # plan reads only an existing state directory
        common = ["--jobs-dir", str(folder), "--state-dir", str(state), "--scope", SCOPE]
        acting = [*common, "--broker", broker.url, "--client-id", "bench-runner"]
        first_plan = run([*JOBRUNNER, "plan", *common], cwd=root).check(2)
        first = run([*JOBRUNNER, "reconcile", *acting], cwd=root).check()
        plan = run([*JOBRUNNER, "plan", *common], cwd=root).check(0)
        again = run([*JOBRUNNER, "reconcile", *acting], cwd=root).check()
        details.update(
            first_plan_seconds=first_plan.seconds,
            first_reconcile_seconds=first.seconds,
            plan_seconds=plan.seconds,
            no_change_reconcile_seconds=again.seconds,
        )
        label = f"{jobs:,} jobs, {devices:,} devices"

        def under_3s(title: str, finished: Finished) -> Row:
            """A row of a command that must finish in under 3 s at this many jobs."""
            return Row(
                title,
                jobs,
                runner=finished.seconds,
                peak_rss=finished.peak_rss,
                target="< 3 s",
                holds=finished.seconds < 3,
                note=label,
            )

        rows.append(under_3s("plan (nothing recorded yet: all create)", first_plan))
        rows.append(
            Row(
                "first reconcile (records every job)",
                jobs,
                runner=first.seconds,
                peak_rss=first.peak_rss,
                state=folder_size(state).bytes,
                note=label + "; informational",
            )
        )
        rows.append(under_3s("plan (in sync: nothing to do)", plan))
        rows.append(under_3s("no-change reconcile", again))
        rows.append(daemon_idle(acting, root, jobs, idle_seconds, details))
    return rows, details


def daemon_idle(
    acting: list[str], root: Path, jobs: int, seconds: float, details: dict[str, object]
) -> Row:
    """`jobrunner watch` with the jobs (each with an interval and a cron schedule, none due):
    CPU used over `seconds` once its start-up work is over."""
    probe = run([*JOBRUNNER, "watch", "--help"])
    if probe.returncode != 0:
        return Row(
            "daemon idle", jobs, target="< 2 % of a core", note="skipped: no `jobrunner watch`"
        )
    with (root / "watch.log").open("wb") as log:
        process = subprocess.Popen(
            [*JOBRUNNER, "watch", *acting],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=child_environment(),
            cwd=root,
        )
        try:
            settled = _settle(process.pid, timeout=120.0)
            start_cpu, start = cpu_of(process.pid), time.monotonic()
            time.sleep(seconds)
            used = cpu_of(process.pid) - start_cpu
            share = used / (time.monotonic() - start)
            # The daemon also reconciles everything every RESYNC seconds: `reconcile` handed
            # over to it is that work, measured in the daemon.
            before = cpu_of(process.pid)
            run([*JOBRUNNER, "reconcile", *acting], cwd=root).check()
            resync = cpu_of(process.pid) - before
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    spread = resync / RESYNC
    details.update(
        daemon_settle_seconds=settled, daemon_cpu_seconds=used, daemon_resync_cpu_seconds=resync
    )
    return Row(
        "daemon idle (jobrunner watch)",
        jobs,
        target="< 2 % of a core",
        holds=share + spread < 0.02,
        note=f"{(share + spread) * 100:.2f} % of one core: {share * 100:.2f} % over"
        f" {seconds:.0f} s after {settled:.0f} s of start-up, plus its full resync every"
        f" {RESYNC:.0f} s ({resync:.2f} s of CPU: {spread * 100:.2f} %); 2 schedules per job,"
        " none due",
    )


def _settle(pid: int, timeout: float) -> float:
    """Wait until the process uses under 5 % of a core over a second; seconds it took."""
    started = time.monotonic()
    last = cpu_of(pid)
    while time.monotonic() - started < timeout:
        time.sleep(1.0)
        now = cpu_of(pid)
        if now - last < 0.05 and time.monotonic() - started > 3:
            break
        last = now
    return time.monotonic() - started


def fleet(broker: RunningBroker, devices: int) -> FleetProcess:
    return FleetProcess(broker, devices, SCOPE)


def soak(executions: int = 1_000) -> tuple[Row, dict[str, object]]:
    """A cron job fired `executions` times in minutes (`bench.soak`): RSS after them against
    RSS after the warm-up, in one process."""
    done = run([PYTHON, "-m", "bench.soak", "--executions", str(executions)], timeout=1800)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    done.check(0, 1)  # 1: the target does not hold, which the row says
    spread = float(found["spread"])
    return (
        Row(
            f"memory over {executions:,} executions of a cron job (after {found['warm_up']})",
            int(found["targets"]),
            peak_rss=done.peak_rss,
            target="RSS within +-5 %",
            holds=bool(found["holds"]),
            note=(
                f"RSS {found['rss_after_warm_up'] / MB:.1f} MB after the warm-up,"
                f" {found['rss_after'] / MB:.1f} MB after ({found['ratio']:.3f}x, at most"
                f" {spread:.1%} off); heap held per execution"
                f" {found['heap_net_bytes_per_execution']:.0f} B (tracemalloc)"
            ),
        ),
        found,
    )
