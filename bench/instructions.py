"""Instructions per request/reply round trip: the runner against the floor, in the same run.

    python -m bench.instructions [--small 1000] [--large 4000]
    python -m bench.instructions --engine [--small 500 --large 2000]

Wall times on a shared 2-core machine move by tens of percent from one run to the next; the
instructions a process executes do not. Each of the floor (bare paho + protobuf) and
`jobrunner reconcile --wait` of the 3-step job runs twice under valgrind (cachegrind without
cache simulation: it only counts instructions), over `small` and over `large` devices of the
same broker and fleet; the difference divided by the extra round trips is what one round trip
costs, start-up (imports, connecting, loading) cancelled out. Hardware counters (`perf stat
-e instructions`) would do as well, where the machine has them; virtual machines often do not.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import manifests
from bench.measure import JOBRUNNER, PYTHON, FleetProcess, broker, run
from bench.report import Row
from bench.scenarios import SCOPE, SYNC_STEPS, workspace
from jobrunner.simulator.broker import RunningBroker

TARGET = 500_000
"""Instructions per round trip the runner may spend (bare paho + protobuf: about 290k)."""
VALGRIND = ["--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


@dataclass(frozen=True)
class Counted:
    floor: float
    """Instructions per round trip of the floor."""
    runner: float
    """Instructions per round trip of the runner."""
    totals: dict[str, dict[int, int]]
    """Instructions of each whole process, by program and devices."""


def available() -> bool:
    return shutil.which("valgrind") is not None


def _instructions(command: list[str], cwd: Path | None = None) -> int:
    valgrind = shutil.which("valgrind")
    assert valgrind is not None
    done = run([valgrind, *VALGRIND, *command], timeout=1800, cwd=cwd).check()
    found = _REFS.findall(done.stderr)
    if not found:
        raise RuntimeError(f"valgrind printed no instruction count:\n{done.stderr[-800:]}")
    return int(found[-1].replace(",", ""))


def count(running: RunningBroker, small: int, large: int, window: int = 200) -> Counted:
    """Both programs over `small` then `large` devices of a fleet already serving `large`."""
    totals: dict[str, dict[int, int]] = {"floor": {}, "runner": {}}
    with workspace("instructions") as root:
        for devices in (small, large):
            floor = [PYTHON, "-m", "bench.floor", "--broker", running.url]
            totals["floor"][devices] = _instructions(
                [*floor, "--devices", str(devices), "--window", str(window)]
            )
            jobs = manifests.rollout(
                root / f"jobs-{devices}", SCOPE, devices, manifests.SYNC_STEPS, "sync-3"
            )
            state = root / f"state-{devices}"
            state.mkdir()
            command = [
                *JOBRUNNER, "reconcile", "--wait", "--jobs-dir", str(jobs),
                "--state-dir", str(state), "--scope", SCOPE, "--broker", running.url,
                "--client-id", "bench-runner",
            ]  # fmt: skip
            totals["runner"][devices] = _instructions(command, cwd=root)
    round_trips = (large - small) * SYNC_STEPS

    def per(name: str) -> float:
        return (totals[name][large] - totals[name][small]) / round_trips

    return Counted(per("floor"), per("runner"), totals)


def engine(small: int = 500, large: int = 2_000) -> float:
    """Instructions per round trip of the engine alone (`bench.loopback`: no broker, no
    threads, no waits), over `small` then `large` targets: the same count at every run, for
    telling apart changes smaller than the 5 % two runs of `count` differ by."""
    totals = [
        _instructions([PYTHON, "-m", "bench.loopback", "--targets", str(targets)])
        for targets in (small, large)
    ]
    return (totals[1] - totals[0]) / ((large - small) * SYNC_STEPS)


def row(counted: Counted, small: int, large: int) -> Row:
    return Row(
        "instructions per request/reply round trip",
        large,
        target=f"<= {TARGET // 1000}k",
        holds=counted.runner <= TARGET,
        note=f"runner {counted.runner / 1000:,.0f}k, floor {counted.floor / 1000:,.0f}k"
        f" ({counted.runner / counted.floor:.2f}x): valgrind instruction counts of whole"
        f" processes, ({large:,} - {small:,} devices) x 3 sync steps",
    )


def skipped() -> Row:
    return Row(
        "instructions per request/reply round trip",
        target=f"<= {TARGET // 1000}k",
        note="not measured: valgrind is not installed",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions")
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=4_000)
    parser.add_argument(
        "--engine",
        action="store_true",
        help="the engine alone (bench.loopback), over --small and --large targets",
    )
    args = parser.parse_args(argv)
    if not available():
        parser.error("valgrind is not installed")
    if args.engine:
        print(json.dumps({"engine": engine(args.small, args.large)}))
        return 0
    with broker() as running:
        fleet = FleetProcess(running, args.large, SCOPE)
        try:
            counted = count(running, args.small, args.large)
        finally:
            fleet.stop()
    print(json.dumps({"floor": counted.floor, "runner": counted.runner, "totals": counted.totals}))
    return 0 if counted.runner <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
