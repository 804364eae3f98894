"""The dashboard's cost: its answers at 10,000 targets, and what serving it takes from dispatch.

    python -m bench.dashboard [--targets 10000] [--rounds 3] [--json FILE]

Latency: a state directory with one job of `--targets` targets (an execution running, part
of its targets done) and 99 jobs of 100 targets; the dashboard served by uvicorn on its own
thread, as `watch --http` serves it; each URL asked many times over loopback HTTP. The floor,
measured in the same run, is the smallest answer the app gives (`/api/v1/runner`): what
remains above it is the page's own work. "after a change" appends 1,000 target transitions
between requests, so that each answer follows the journal and builds the view again.

Dispatch: the loopback engine (`bench.loopback`: 3 sync steps over `--targets` devices, no
broker: about 10,000 round trips a second, far more than a broker and a fleet allow, so
that the dashboard has the most to follow) alone, and with the dashboard serving its state
directory to a client that asks for the job like a browser (once a second) and for
`/metrics` like Prometheus, then to one that asks four times as often: rounds interleaved,
the ratio of the medians is the cost of serving.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from bench import loopback
from bench.report import Row, text_table
from jobrunner.engine.service.runner import Runner
from jobrunner.manifests import ManifestSet
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir
from jobrunner.state.records import JobRecord, Trigger, TriggerKind
from jobrunner.state.registry import DeviceRegistry
from jobrunner.web.server import Dashboard

LATENCY_TARGETS = {"job page and its API": 0.200, "/metrics": 0.050}


class Facts:
    """What the dashboard asks the daemon, answered as a connected one would; the jobs are
    the runner's (`beside` the loopback engine), or none (the latency part reads the disk)."""

    client_id = "bench-dashboard"

    def __init__(self, runner: Runner | None = None) -> None:
        self.runner = runner

    def devices(self) -> DeviceRegistry | None:
        return self.runner.registry.copy() if self.runner is not None else None

    def held(self) -> dict[tuple[str, str], JobState]:
        return self.runner.held() if self.runner is not None else {}

    def broker_connected(self) -> bool:
        return True

    def in_flight(self) -> int:
        return 0

    def storage_problem(self) -> str | None:
        return None

    def last_turn(self) -> float:
        return time.monotonic()

    def manifests(self) -> ManifestSet | None:
        return None


@contextlib.contextmanager
def served(state_dir: Path, runner: Runner | None = None) -> Iterator[str]:
    dashboard = Dashboard("127.0.0.1:0", None, state_dir)
    dashboard.start(Facts(runner))
    try:
        yield dashboard.url.rstrip("/")
    finally:
        dashboard.stop()


def _job(state: StateDir, name: str, targets: int, done: int) -> JobState:
    job = JobState.create(state, JobRecord(scope="bench", name=name))
    clients = [f"gw-{n:05d}" for n in range(1, targets + 1)]
    summary = job.begin_execution(Trigger(kind=TriggerKind.RUN, detail="1"), clients, None)
    job.add_targets(clients, now=1.0)
    for index, client in enumerate(clients[:done]):
        started = job.targets.get(client).start(summary.id, 2.0)
        if index % 10 == 9:  # one in ten failed, with a device's message
            job.targets.put(started.failed("device-error 500: bundle not found", 3.0, "d:500"))
        else:
            job.targets.put(started.succeeded(1, "command exited with code 0", 3.0))
    job.flush()
    return job


def _median_seconds(ask: Callable[[], object], count: int) -> float:
    times = []
    for _ in range(count):
        began = time.perf_counter()
        ask()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def latency(targets: int) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="jobrunner-bench-dashboard-") as folder:
        state = StateDir(Path(folder))
        big = _job(state, "big", targets, targets // 2)
        for n in range(99):
            _job(state, f"small-{n:02d}", 100, 50).close()
        with served(Path(folder)) as url, httpx.Client(base_url=url, timeout=30) as client:

            def get(path: str) -> Callable[[], object]:
                def ask() -> object:
                    response = client.get(path)
                    response.raise_for_status()
                    return response

                return ask

            api = "/api/v1/jobs/bench/big"
            for path in ("/api/v1/runner", api, "/metrics", "/api/v1/jobs"):
                get(path)()  # loaded once, as a dashboard that has been open for a while
            floor = _median_seconds(get("/api/v1/runner"), 200)
            clients = [t.client_id for t in big.targets]
            cursor = [0]

            def change() -> None:
                for _ in range(1000):
                    client_id = clients[cursor[0] % len(clients)]
                    cursor[0] += 1
                    big.targets.put(big.targets.get(client_id).waiting("moved on", 4.0))
                big.flush()
                time.sleep(0.51)  # past the reader's FRESH: the next request follows

            def after_change() -> object:
                return get(api)()

            measured: list[tuple[str, str, Callable[[], object], int]] = [
                ("job API, first 500 targets", "job page and its API", get(api), 50),
                (
                    "job API, failed targets",
                    "job page and its API",
                    get(api + "?status=PROCESS_FAILED&status=PROCESS_AWAITING&limit=100"),
                    50,
                ),
                (
                    "job API, all targets",
                    "job page and its API",
                    get(api + f"?limit={targets}"),
                    20,
                ),
                ("job page (HTML)", "job page and its API", get("/jobs/bench/big"), 50),
                ("/metrics (100 jobs)", "/metrics", get("/metrics"), 50),
                ("/api/v1/jobs (100 jobs)", "", get("/api/v1/jobs"), 50),
            ]
            for name, goal, ask, count in measured:
                seconds = _median_seconds(ask, count)
                rows.append(_row(name, targets, seconds, floor, goal))
            changed = []
            for _ in range(10):
                change()
                began = time.perf_counter()
                after_change()
                changed.append(time.perf_counter() - began)
            rows.append(
                _row(
                    "job API after 1,000 transitions",
                    targets,
                    statistics.median(changed),
                    floor,
                    "job page and its API",
                )
            )
        big.close()
    return rows


def _row(name: str, targets: int, seconds: float, floor: float, goal: str) -> Row:
    limit = LATENCY_TARGETS.get(goal)
    return Row(
        scenario=name,
        targets=targets,
        runner=seconds,
        floor=floor,
        target="" if limit is None else f"< {limit * 1000:.0f} ms",
        holds=None if limit is None else seconds < limit,
        note=f"{seconds * 1000:.1f} ms (the floor: {floor * 1000:.2f} ms)",
    )


def _poll(url: str, stop: threading.Event, every: float, metrics_every: int) -> None:
    """Ask for the job's first page (and the runner's facts, as the page does) every
    `every` seconds, and for /metrics every `metrics_every` of those."""
    with httpx.Client(base_url=url, timeout=30) as client:
        ticks = 0
        while not stop.wait(every):
            ticks += 1
            with contextlib.suppress(httpx.HTTPError):  # the job appears a moment later
                client.get("/api/v1/jobs/bench/sync-3?limit=100")
                client.get("/api/v1/runner")
                if ticks % metrics_every == 0:
                    client.get("/metrics")


def _watched(every: float, metrics_every: int) -> Callable[[Runner], Any]:
    @contextlib.contextmanager
    def beside(runner: Runner) -> Iterator[None]:
        stop = threading.Event()
        with served(runner.config.state_dir, runner) as url:
            poller = threading.Thread(
                target=_poll, args=(url, stop, every, metrics_every), daemon=True
            )
            poller.start()
            try:
                yield
            finally:
                stop.set()
                poller.join()

    return beside


WATCHERS = {
    # a browser on the job page (once a second) and Prometheus (every 5 s: 3x its default)
    "dispatch, a browser and Prometheus": (1.0, 5, 1.05),
    # four browsers' worth, and /metrics every second
    "dispatch, polled 4x a second": (0.25, 4, None),
}


def dispatch(targets: int, rounds: int) -> list[Row]:
    alone: list[float] = []
    watched: dict[str, list[float]] = {name: [] for name in WATCHERS}
    for _ in range(rounds):
        alone.append(loopback.run(targets, 200, None)["run_seconds"])
        for name, (every, metrics_every, _) in WATCHERS.items():
            beside = _watched(every, metrics_every)
            watched[name].append(loopback.run(targets, 200, None, beside=beside)["run_seconds"])
    floor = statistics.median(alone)
    rows = []
    for name, (_, _, limit) in WATCHERS.items():
        seconds = statistics.median(watched[name])
        rows.append(
            Row(
                scenario=name,
                targets=targets,
                runner=seconds,
                floor=floor,
                ops=3 * targets / seconds,
                target="" if limit is None else f"<= {limit:.2f}x",
                holds=None if limit is None else seconds / floor <= limit,
                note=f"alone {alone}, watched {watched[name]}",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = latency(args.targets) + dispatch(args.targets, args.rounds)
    print(text_table(rows))
    if args.json is not None:
        found: list[dict[str, Any]] = [row.as_dict() for row in rows]
        args.json.write_text(json.dumps(found, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
