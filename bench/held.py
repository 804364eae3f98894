"""Many jobs held by one daemon: what its start, a resync and a takeover cost.

    python -m bench.held [--jobs 1000] [--targets 100]

Two state directories are made first (each job run once to its end over the engine's
in-memory link): JOBS jobs of TARGETS targets each, and one job of JOBS x TARGETS targets,
over the same DeviceList. Then, in a fresh process for each, what a `watch` daemon does before
its first turn (take up every recorded job, read the manifests, plan, apply) and what a
periodic resync costs after it (a reconcile with no file changed). CPU seconds of the process,
which are stable on a busy machine, and its peak RSS. Prints a JSON line; exits 1 when a
target does not hold.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.manifests import many_jobs
from jobrunner.device import BrokerSettings
from jobrunner.engine.core.runtime import EngineSettings
from jobrunner.engine.link.events import Inbox
from jobrunner.engine.link.memory import MemoryLink, ok
from jobrunner.engine.service.daemon import Daemon
from jobrunner.engine.service.runner import Runner, RunnerConfig

SCOPE = "held"
RATIO = 1.3
"""Many small jobs may cost at most this much more than one job of as many targets."""
RESYNC_SHARE = 0.1
"""A resync with no file changed costs at most this share of the start."""


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
    with Runner(_config(root), link=_link) as runner:
        daemon.runner = runner
        daemon.reconcile("start")
        started = time.process_time()
        daemon.reconcile("periodic resync")
        resynced = time.process_time()
        daemon.runner = None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"start": started - begun, "resync": resynced - started, "peak_rss": peak}


def _child(root: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.held", "--measure", str(root)],
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.held", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure is not None:
        print(json.dumps(measure(args.measure)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-held-") as folder:
        many, one = Path(folder) / "many", Path(folder) / "one"
        print(f"making {args.jobs:,} jobs x {args.targets} targets ...", file=sys.stderr)
        make(many, args.jobs, args.targets)
        print(f"making 1 job x {args.jobs * args.targets:,} targets ...", file=sys.stderr)
        make(one, 1, args.jobs * args.targets)
        found = {"many": _child(many), "one": _child(one)}
    ratio = found["many"]["start"] / found["one"]["start"]
    share = found["many"]["resync"] / found["many"]["start"]
    result = {
        "jobs": args.jobs,
        "targets": args.targets,
        **found,
        "ratio": ratio,
        "resync_share": share,
        "holds": ratio <= RATIO and share <= RESYNC_SHARE,
    }
    print(json.dumps(result))
    return 0 if result["holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
