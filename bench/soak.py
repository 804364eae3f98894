"""A year of a cron job in minutes: the runner's memory after 1,000 executions.

    python -m bench.soak [--executions 1000] [--warm-up 200] [--targets 200]

What `watch` does when a schedule fires every few seconds, accelerated: the real `Runner`
(state directory, engine, journal, execution logs) over the engine's in-memory link, on a
clock of its own that jumps ten seconds per fire, so that nothing waits. Half of the targets
fail at every fire (an error reply), so each fire runs them again, as on a fleet where some
devices keep failing. After each execution the dashboard takes the job as a browser polling
it would (`/api/v1/jobs/...`), and Prometheus scrapes `/metrics`.

The process's RSS after the warm-up and after `--executions` more, both after a garbage
collection, must stay within 5 % of each other. Then tracemalloc's net allocation per
execution over two more rounds, by the line that allocated (what is still held). Prints the
figures on stderr and a JSON line on stdout; exits 1 when the RSS target does not hold.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from prometheus_client import CollectorRegistry

from jobrunner.device import BrokerSettings
from jobrunner.device.payload import KuraPayload
from jobrunner.engine.core.runtime import EngineSettings
from jobrunner.engine.link.events import Inbox
from jobrunner.engine.link.memory import MemoryLink, Sent, error, ok
from jobrunner.engine.service.runner import Runner, RunnerConfig
from jobrunner.state.records import Trigger, TriggerKind
from jobrunner.web.metrics import EngineMetrics, FleetCollector
from jobrunner.web.reader import FleetReader
from jobrunner.web.views import Views

TOLERANCE = 0.05
"""RSS after the executions may differ from RSS after the warm-up by this share at most."""
SCOPE, NAME = "soak", "often"
_PAGE = os.sysconf("SC_PAGE_SIZE")


class _Clock:
    """The engine's clock: ten seconds pass per fire, none while it runs."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class _Facts:
    """The daemon's facts, as the metrics collector asks for them."""

    client_id = "bench-soak"

    def broker_connected(self) -> bool:
        return True

    def in_flight(self) -> int:
        return 0


def _device(sent: Sent) -> KuraPayload:
    """Odd devices refuse every request: half of the targets run again at every fire."""
    return error(500, "busy") if int(sent.client_id[3:]) % 2 else ok()


def _rss() -> int:
    """This process's resident set, bytes, after a full collection."""
    gc.collect()
    return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE


def _write_job(jobs: Path, targets: int) -> None:
    jobs.mkdir(parents=True)
    devices = ", ".join(f"gw-{n:05d}" for n in range(targets))
    (jobs / f"{NAME}.yaml").write_text(
        f"apiVersion: jobrunner/v1\nkind: Job\nmetadata: {{name: {NAME}, scope: {SCOPE}}}\n"
        f"spec:\n  targets: {{devices: [{devices}]}}\n  steps:\n"
        "    - {name: stop, definition: Bundle Stop, timeout: 30s, properties: {bundleId: 42}}\n"
        '  run: "1"\n'
    )


def run(executions: int, warm_up: int, targets: int, traced: int) -> dict[str, float]:
    clock = _Clock()
    looked = itertools.count()  # the dashboard's clock: every look takes a fresh copy
    with tempfile.TemporaryDirectory(prefix="jobrunner-soak-") as folder:
        root = Path(folder)
        _write_job(root / "jobs.d", targets)
        config = RunnerConfig(
            jobs_dir=root / "jobs.d",
            state_dir=root / "state",
            scope=SCOPE,
            broker=BrokerSettings.resolve("mqtt://127.0.0.1:1", client_id="bench-soak"),
            engine=EngineSettings(durable=False),
        )

        def link(inbox: Inbox) -> MemoryLink:
            return MemoryLink(inbox, _device, keep=False)

        metrics = EngineMetrics(CollectorRegistry())
        with Runner(config, link=link, clock=clock, observer=metrics) as runner:
            reader = FleetReader(
                runner.state, runner.held, runner.registry.copy, clock=lambda: next(looked)
            )
            views, scrape = Views(reader), FleetCollector(reader, _Facts())
            runner.wait(runner.apply(runner.plan(runner.load())).started)
            job = runner.engine.jobs[(SCOPE, NAME)]
            trigger = Trigger(kind=TriggerKind.SCHEDULE, detail="every 10 s")

            def fire(times: int) -> None:
                for _ in range(times):
                    clock.now += 10
                    summary = runner.reconciler.start(job, trigger, revision=None)
                    runner.wait([(SCOPE, NAME, summary.id)])
                    views.job(SCOPE, NAME)
                    list(scrape.collect())

            started = time.process_time()
            fire(warm_up)
            warm = _rss()
            steps = []
            for _ in range(10):
                fire(executions // 10)
                steps.append(_rss())
            cpu = time.process_time() - started
            tracemalloc.start(1)
            fire(traced)
            gc.collect()
            before = tracemalloc.take_snapshot()
            fire(traced)
            gc.collect()
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
    grown = after.compare_to(before, "lineno")
    net = sum(stat.size_diff for stat in grown)
    for stat in grown[:5]:
        print(f"  {stat.size_diff / traced:8.0f} B/execution  {stat.traceback}", file=sys.stderr)
    return {
        "targets": targets,
        "executions": executions,
        "warm_up": warm_up,
        "rss_after_warm_up": warm,
        "rss_after": steps[-1],
        "rss_min": min(steps),
        "rss_max": max(steps),
        "ratio": steps[-1] / warm,
        "spread": max(abs(s / warm - 1) for s in steps),
        "cpu_seconds": round(cpu, 2),
        "heap_net_bytes_per_execution": round(net / traced, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--warm-up", type=int, default=200)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--traced", type=int, default=100, help="executions per tracemalloc round")
    args = parser.parse_args(argv)
    found = run(args.executions, args.warm_up, args.targets, args.traced)
    holds = found["spread"] <= TOLERANCE
    print(
        f"RSS after {args.warm_up} executions {found['rss_after_warm_up'] / 1e6:.1f} MB, after"
        f" {args.executions} more {found['rss_after'] / 1e6:.1f} MB ({found['ratio']:.3f}x;"
        f" at most {found['spread']:.1%} off at every hundred; target within {TOLERANCE:.0%}:"
        f" {'holds' if holds else 'does NOT hold'}); heap held per execution:"
        f" {found['heap_net_bytes_per_execution']:.0f} B",
        file=sys.stderr,
    )
    print(json.dumps({**found, "holds": holds}))
    return 0 if holds else 1


if __name__ == "__main__":
    raise SystemExit(main())
