"""Many jobs held by one daemon: what its start, a resync and a takeover cost; and `plan`
and `status` of many jobs.

    python -m bench.held [--jobs 1000] [--targets 100] [--catalogue 5000]

Two state directories are made first (each job run once to its end over the engine's
in-memory link): JOBS jobs of TARGETS targets each, and one job of JOBS x TARGETS targets,
over the same DeviceList. Then, in a fresh process for each, what a `watch` daemon does before
its first turn (take up every recorded job, read the manifests, plan, apply), what a
periodic resync costs after it (a reconcile with no file changed), and a takeover: a tenth
of the jobs let go (as a runner whose lease was lost) and taken up again (as the runner that
takes them over does), then the reconcile the daemon makes after it. CPU seconds of the
process, which are stable on a busy machine, and its peak RSS.

Then CATALOGUE jobs (each a tag group of a DeviceList of 10,000 devices, two schedules, no
run token) are recorded, and `jobrunner plan` and `jobrunner status` run over them as
processes of their own. Prints a JSON line; exits 1 when a target does not hold.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.manifests import many_jobs
from bench.measure import JOBRUNNER, run
from bench.report import MB, Row
from jobrunner.device import BrokerSettings
from jobrunner.engine.core.runtime import EngineSettings
from jobrunner.engine.link.events import Inbox
from jobrunner.engine.link.memory import MemoryLink, ok
from jobrunner.engine.service.daemon import Daemon
from jobrunner.engine.service.runner import Runner, RunnerConfig

SCOPE = "held"
START = 3.0
"""CPU seconds a daemon holding JOBS x TARGETS may spend before its first turn."""
RATIO = 1.3
"""Many small jobs may cost at most this much more than one job of as many targets."""
RESYNC_SHARE = 0.1
"""A resync with no file changed costs at most this share of the start."""
PEAK_RSS = 150 * MB
TAKEN_SHARE = 0.1
"""The share of the jobs a takeover moves from one runner to the other."""
CATALOGUE_DEVICES = 10_000
PER_JOB = 0.001
"""CPU seconds per job `plan` and `status` may spend (5 s for 5,000 jobs), start-up included."""


def _config(root: Path) -> RunnerConfig:
    return RunnerConfig(
        jobs_dir=root / "jobs.d",
        state_dir=root / "state",
        scope=SCOPE,
        broker=BrokerSettings.from_url("mqtt://127.0.0.1:1", client_id="bench-held"),
        engine=EngineSettings(durable=False, max_in_flight=2000),
    )


def _link(inbox: Inbox) -> MemoryLink:
    return MemoryLink(inbox, lambda sent: ok())


def make(root: Path, jobs: int, targets: int) -> None:
    """`jobs` jobs of `targets` targets, over one DeviceList, each run once to its end."""
    folder = many_jobs(root / "jobs.d", SCOPE, jobs * targets, jobs, datetime.now(UTC), jobs)
    for file in folder.glob("job-*.yaml"):
        file.write_text(file.read_text().replace("spec:\n", 'spec:\n  run: "1"\n', 1))
    (root / "state").mkdir()
    with Runner(_config(root), link=_link) as runner:
        runner.wait(runner.apply(runner.plan(runner.load())).started)


def measure(root: Path) -> dict[str, float]:
    """In this process: the daemon's start, then a resync (CPU seconds), and peak RSS."""
    daemon = Daemon(_config(root))
    begun = time.process_time()
    with Runner(_config(root), link=_link) as runner, contextlib.ExitStack() as frozen:
        daemon.runner = runner
        daemon._first_reconcile(frozen)
        started = time.process_time()
        peak = peak_rss()
        daemon.reconcile("periodic resync")
        resynced = time.process_time()
        taken = sorted(runner.engine.jobs)[:: round(1 / TAKEN_SHARE)]
        for key in taken:  # another runner's now: its lease was lost
            runner.engine.forget(key, "bench: taken over by another runner")
        let_go = time.process_time()
        for key in taken:  # what the runner taking them over does (Runner._take_free)
            job = runner._take_up(*key)
            assert job is not None
            daemon._taken(job)  # the hook `Daemon.run` gives the runner
        taken_up = time.process_time()
        daemon.reconcile("change in the jobs directory")  # what the hook asks for
        took_over = time.process_time()
        daemon.runner = None
    return {
        "start": started - begun,
        "resync": resynced - started,
        "peak_rss": peak,
        "taken_jobs": len(taken),
        "take_up": taken_up - let_go,
        "takeover": took_over - let_go,
    }


def peak_rss() -> int:
    """This process's peak RSS since it started: VmHWM, which its `exec` began again (the
    rusage's maximum keeps that of the process it was forked from, a parent that may have
    made 100,000 targets), else the rusage's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(*arguments: str) -> dict[str, Any]:
    """`python -m bench.held ARGUMENTS` in a process of its own, and the JSON it prints."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.held", *arguments],
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def catalogue(root: Path, jobs: int) -> dict[str, float]:
    """`jobs` jobs recorded (none started), then `plan` and `status` of them, each a process
    of its own: CPU seconds, wall seconds and peak RSS."""
    _child("--record", str(root), str(jobs))
    folder = root / "jobs.d"
    common = ["--state-dir", str(root / "state"), "--scope", SCOPE]
    plan = run([*JOBRUNNER, "plan", "--jobs-dir", str(folder), *common], cwd=root).check(0)
    status = run([*JOBRUNNER, "status", *common], cwd=root).check(0)
    if status.stdout.count("\n") < jobs:
        raise RuntimeError(f"status shows fewer than {jobs} lines:\n{status.stdout[-500:]}")
    return {
        "plan_cpu": plan.cpu,
        "plan_seconds": plan.seconds,
        "plan_peak_rss": plan.peak_rss,
        "status_cpu": status.cpu,
        "status_seconds": status.seconds,
        "status_peak_rss": status.peak_rss,
    }


def record(root: Path, jobs: int) -> None:
    """`jobs` jobs over a DeviceList of CATALOGUE_DEVICES, recorded, none started."""
    many_jobs(root / "jobs.d", SCOPE, CATALOGUE_DEVICES, jobs, datetime.now(UTC))
    (root / "state").mkdir()
    with Runner(_config(root), link=_link) as runner:
        runner.apply(runner.plan(runner.load()))


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of the cheapest start, with the cheapest of each figure of the runs (the
    machine is shared: what others did meanwhile only ever adds)."""
    best = dict(min(runs, key=lambda run: float(run["start"])))
    for figure in ("resync", "take_up", "takeover", "peak_rss"):
        best[figure] = min(run[figure] for run in runs)
    return best


def measure_all(jobs: int, targets: int, catalogued: int, rounds: int = 2) -> dict[str, Any]:
    """Every figure of the module (the best of `rounds`, the two sizes taking turns)."""
    with tempfile.TemporaryDirectory(prefix="bench-held-") as folder:
        many, one = Path(folder) / "many", Path(folder) / "one"
        print(f"making {jobs:,} jobs x {targets} targets ...", file=sys.stderr)
        _child("--make", str(many), str(jobs), str(targets))
        print(f"making 1 job x {jobs * targets:,} targets ...", file=sys.stderr)
        _child("--make", str(one), "1", str(jobs * targets))
        runs: dict[str, list[dict[str, Any]]] = {"many": [], "one": []}
        for _ in range(rounds):
            runs["many"].append(_child("--measure", str(many)))
            runs["one"].append(_child("--measure", str(one)))
        found: dict[str, Any] = {name: _best(each) for name, each in runs.items()}
        found["starts"] = {name: [run["start"] for run in each] for name, each in runs.items()}
        if catalogued:
            print(f"plan and status of {catalogued:,} jobs ...", file=sys.stderr)
            found["catalogue"] = catalogue(Path(folder) / "catalogue", catalogued)
    many_found = found["many"]
    found.update(
        jobs=jobs,
        targets=targets,
        catalogued=catalogued,
        ratio=many_found["start"] / found["one"]["start"],
        resync_share=many_found["resync"] / many_found["start"],
    )
    return found


def rows(found: dict[str, Any]) -> list[Row]:
    """The rows of `make bench` (`--only held`)."""
    many, one = found["many"], found["one"]
    jobs, targets = found["jobs"], found["targets"]
    size = f"{jobs:,} jobs x {targets} targets"
    found_rows = [
        Row(
            f"held: daemon start, {size}",
            jobs * targets,
            runner=many["start"],
            peak_rss=many["peak_rss"],
            target=f"<= {START:.0f} s CPU",
            holds=many["start"] <= START,
            note="CPU seconds before the first turn: take up every recorded job, read the"
            " manifests (a DeviceList of as many devices), plan, apply",
        ),
        Row(
            f"held: start of {size} against 1 job x {jobs * targets:,} targets",
            jobs * targets,
            runner=many["start"],
            floor=one["start"],
            target=f"<= {RATIO}x",
            holds=found["ratio"] <= RATIO,
            note=f"the one job: {one['start']:.2f} s CPU, peak RSS {one['peak_rss'] / MB:.0f} MB",
        ),
        Row(
            f"held: peak RSS after the start, {size}",
            jobs * targets,
            peak_rss=many["peak_rss"],
            target=f"<= {PEAK_RSS / MB:.0f} MB",
            holds=many["peak_rss"] <= PEAK_RSS,
        ),
        Row(
            f"held: periodic resync (no file changed), {size}",
            jobs * targets,
            runner=many["resync"],
            floor=many["start"],
            target=f"<= {RESYNC_SHARE:.0%} of the start",
            holds=found["resync_share"] <= RESYNC_SHARE,
            note=f"one job: {one['resync']:.2f} s",
        ),
        Row(
            f"held: takeover of {many['taken_jobs']:,} of {jobs:,} jobs",
            many["taken_jobs"] * targets,
            runner=many["takeover"],
            floor=many["start"],
            note=f"taking up the jobs {many['take_up']:.2f} s CPU"
            f" ({many['take_up'] / many['taken_jobs'] * 1000:.1f} ms a job), then the"
            f" reconcile it asks for {many['takeover'] - many['take_up']:.2f} s (as a resync"
            " plans every job held); informational",
        ),
    ]
    if found.get("catalogue"):
        listed = found["catalogue"]
        count = found["catalogued"]
        for command in ("plan", "status"):
            cpu = listed[f"{command}_cpu"]
            found_rows.append(
                Row(
                    f"held: `{command}` of {count:,} recorded jobs",
                    count,
                    runner=cpu,
                    peak_rss=int(listed[f"{command}_peak_rss"]),
                    target=f"<= {PER_JOB * count:.3g} s CPU",
                    holds=cpu <= PER_JOB * count,
                    note=f"a process of its own, {listed[f'{command}_seconds']:.2f} s wall;"
                    f" {CATALOGUE_DEVICES:,} devices, 2 schedules a job",
                )
            )
    return found_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.held", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--catalogue", type=int, default=5000, help="jobs of plan and status")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--make", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--record", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make is not None:  # in a process of its own: the others are not forked from it
        make(Path(args.make[0]), int(args.make[1]), int(args.make[2]))
        print("{}")
        return 0
    if args.record is not None:
        record(Path(args.record[0]), int(args.record[1]))
        print("{}")
        return 0
    if args.measure is not None:
        logging.disable(logging.WARNING)  # the jobs let go say so, each
        print(json.dumps(measure(args.measure)))
        return 0
    found = measure_all(args.jobs, args.targets, args.catalogue)
    made = rows(found)
    for row in made:
        verdict = (
            "" if row.holds is None else f"; target {row.target}: {'yes' if row.holds else 'NO'}"
        )
        print(f"{row.scenario}: {row.runner or 0:.2f} s{verdict}", file=sys.stderr)
    found["holds"] = all(row.holds is not False for row in made)
    print(json.dumps(found))
    return 0 if found["holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
