"""The runner's own CPU per round trip, without broker, fleet or paho: a profiling harness.

    python -m bench.loopback --targets 10000 [--profile out.prof]

Runs the real `Runner` (manifests, plan, reconcile, engine, journal, logs, step operations)
over the engine's in-memory link (`jobrunner.engine.link.memory.MemoryLink`): every request is
answered at once with the reply a Kura device sends, after encoding the request and decoding
the reply as the MQTT client would. What remains is the runner's CPU, which on a 2-core
machine shared with a broker and a fleet is what limits throughput. Prints JSON: seconds of
the run phase and microseconds of CPU per round trip.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import jobrunner.state.stores.files as state_files
from bench.manifests import SYNC_STEPS, rollout
from jobrunner.device import BrokerSettings
from jobrunner.device.payload import KuraPayload, Metric, MetricType, ProtobufCodec
from jobrunner.engine.core.runtime import EngineSettings
from jobrunner.engine.link.events import Inbox
from jobrunner.engine.link.memory import MemoryLink, Sent
from jobrunner.engine.service.runner import Runner, RunnerConfig
from jobrunner.state.jobstore import JobState
from jobrunner.state.opening import open_state
from jobrunner.state.targets import TargetState, TargetTable

_CODEC = ProtobufCodec()
_REQUESTER = Metric.string("bench-loopback")
_COMMAND_REPLY = _CODEC.encode(
    KuraPayload(
        metrics={
            "command.stderr": Metric(MetricType.STRING, ""),
            "command.stdout": Metric(MetricType.STRING, ""),
            "command.exit.code": Metric(MetricType.INT32, 0),
            "command.timedout": Metric(MetricType.BOOL, False),
            "response.code": Metric(MetricType.INT32, 200),
        },
        timestamp=1_700_000_000_000,
    )
)
_OK_REPLY = _CODEC.encode(
    KuraPayload(
        metrics={"response.code": Metric(MetricType.INT32, 200)}, timestamp=1_700_000_000_000
    )
)


def _loopback(sent: Sent) -> KuraPayload:
    """Answer like a device at once, doing on the way what the MQTT client does for the
    runner: encode the request (with its request metrics) and decode the reply (pre-encoded:
    the device's own work is not measured)."""
    metrics = dict(sent.request.metrics)
    metrics["request.id"] = Metric.string(sent.tag.request_id)
    metrics["requester.client.id"] = _REQUESTER
    _CODEC.encode(KuraPayload(metrics=metrics, body=sent.request.body))
    return _CODEC.decode(_COMMAND_REPLY if sent.request.app_id == "CMD-V1" else _OK_REPLY)


class _Counted:
    """Counts target transitions (journal appends) and whole-file rewrites while installed."""

    def __init__(self) -> None:
        self.count = 0
        self.rewrites = 0
        self._put = TargetTable.put
        self._atomic_write = state_files.atomic_write

    def __enter__(self) -> _Counted:
        counter, put, atomic_write = self, self._put, self._atomic_write

        def counted(table: TargetTable, state: TargetState) -> None:
            counter.count += 1
            put(table, state)

        def rewrite(path: Path, data: bytes, durable: bool = True) -> None:
            counter.rewrites += 1
            atomic_write(path, data, durable)

        TargetTable.put = counted  # type: ignore[method-assign, assignment]
        state_files.atomic_write = rewrite
        return self

    def __exit__(self, *exc: object) -> None:
        TargetTable.put = self._put  # type: ignore[method-assign]
        state_files.atomic_write = self._atomic_write


def _io() -> tuple[int, int]:
    """(bytes written, write calls) by this process so far, from /proc/self/io."""
    fields = dict(
        line.split(": ") for line in Path("/proc/self/io").read_text().splitlines() if line
    )
    return int(fields["wchar"]), int(fields["syscw"])


def run(
    targets: int,
    window: int,
    profile: Path | None,
    trace: bool = False,
    beside: Callable[[Runner], AbstractContextManager[None]] | None = None,
    state_db: str | None = None,
) -> dict[str, float]:
    """One `reconcile --wait` of a 3-step job over `targets` devices, in this process. With
    `trace`, also the Python heap (tracemalloc): its peak, and what is still live once the
    execution has ended (the state the runner holds). `beside(runner)`: what runs while the
    runner does (bench.dashboard serves its jobs). `state_db`: the state in that PostgreSQL
    database instead of a state directory (bench.several)."""
    if trace:
        tracemalloc.start(1)
    links: list[MemoryLink] = []

    def link(inbox: Inbox) -> MemoryLink:
        links.append(MemoryLink(inbox, _loopback, max_in_flight=window, keep=False))
        return links[-1]

    with tempfile.TemporaryDirectory(prefix="jobrunner-loopback-") as folder:
        root = Path(folder)
        jobs = rollout(root / "jobs.d", "bench", targets, SYNC_STEPS, "sync-3")
        config = RunnerConfig(
            jobs_dir=jobs,
            state_dir=root / "state",
            scope="bench",
            broker=BrokerSettings.resolve("mqtt://127.0.0.1:1", client_id="bench-loopback"),
            engine=EngineSettings(max_in_flight=window),
            state_db=state_db,
        )
        with (
            Runner(config, link=link) as runner,
            beside(runner) if beside is not None else contextlib.nullcontext(),
            _Counted() as transitions,
        ):
            started = time.perf_counter()
            cpu = time.process_time()
            plan = runner.plan(runner.load())
            applied = runner.apply(plan)
            prepared = time.perf_counter()
            profiler = cProfile.Profile() if profile else None
            if profiler:
                profiler.enable()
            cpu_run = time.process_time()
            written, writes = _io()
            before, rewrites = transitions.count, transitions.rewrites
            summaries = runner.wait(applied.started)
            moved = transitions.count - before
            rewrites = transitions.rewrites - rewrites
            written, writes = (
                now - then for now, then in zip(_io(), (written, writes), strict=True)
            )
            cpu_run = time.process_time() - cpu_run
            if profiler:
                profiler.disable()
                profiler.dump_stats(str(profile))
            ended = time.perf_counter()
            cpu = time.process_time() - cpu
            requests = links[0].count
            heap: dict[str, float] = {}
            if trace:
                gc.collect()
                live, peak = tracemalloc.get_traced_memory()
                del plan, applied  # the manifests, as parsed, and the plan made of them
                gc.collect()
                engine, _ = tracemalloc.get_traced_memory()
                heap = {"heap_live_bytes": live, "heap_peak_bytes": peak, "engine_bytes": engine}
                tracemalloc.stop()
        state_bytes = sum(p.stat().st_size for p in (root / "state").rglob("*") if p.is_file())
        replay, replayed = _replay(root / "state", state_db)
        ok = summaries[0].counts.get("PROCESS_OK", 0)
    return {
        "targets": targets,
        "ok": ok,
        "requests": requests,
        "transitions": moved,
        "prepare_seconds": round(prepared - started, 3),
        "run_seconds": round(ended - prepared, 3),
        "run_cpu_us_per_request": round(cpu_run / max(requests, 1) * 1e6, 1),
        "cpu_seconds": round(cpu, 3),
        "bytes_written_per_transition": round(written / max(moved, 1), 1),
        "writes_per_transition": round(writes / max(moved, 1), 3),
        "rewrites": rewrites,
        "rewrites_per_transition": round(rewrites / max(moved, 1), 6),
        "state_bytes": state_bytes,
        "replay_seconds": round(replay, 3),
        "replayed_targets": replayed,
        **heap,
    }


def _replay(folder: Path, state_db: str | None) -> tuple[float, int]:
    """Seconds to load the job as a restarted runner does, and how many targets it has."""
    began = time.perf_counter()
    state = open_state(folder, state_db)
    job = JobState.load(state, "bench", "sync-3")
    seconds = time.perf_counter() - began
    job.close()
    state.storage.close()
    return seconds, len(job.targets)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loopback")
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--profile", type=Path, default=None, help="cProfile output file")
    parser.add_argument("--trace-memory", action="store_true", help="measure the Python heap")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.targets, args.window, args.profile, args.trace_memory)), flush=True)


if __name__ == "__main__":
    main()
