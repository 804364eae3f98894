"""Two revisions of jobrunner on the same broker and fleet, interleaved: what a change bought.

    python -m bench.compare BEFORE AFTER [--rounds 5]

BEFORE and AFTER are folders that hold a `jobrunner` package (e.g. `git worktree add
/tmp/before HEAD~1`, and `.` for the working tree). Each round runs the floor, then
`reconcile --wait` of the 10,000-target 3-step job with BEFORE, then with AFTER, so that
all three see the same machine; the table gives the median and best of each, and the
ratios to the floor of the same round. On a shared machine only interleaved runs compare.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from bench import manifests, measure, scenarios
from bench.measure import Finished
from jobrunner.simulator.broker import RunningBroker


def _reconcile_with(
    tree: Path, running: RunningBroker, jobs: Path, state: Path, root: Path
) -> Finished:
    measure.JOBRUNNER_PATH[:] = [tree.resolve()]
    try:
        done = scenarios.reconcile(running, jobs, state, root)
    finally:
        measure.JOBRUNNER_PATH.clear()
    if done.returncode != 0:
        raise RuntimeError(f"reconcile with {tree} exited {done.returncode}:\n{done.stderr[-800:]}")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare")
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=300, help="the floor's window")
    args = parser.parse_args(argv)
    for tree in (args.before, args.after):
        if not (tree / "jobrunner" / "__init__.py").is_file():
            parser.error(f"{tree} holds no jobrunner package")
    times: dict[str, list[float]] = {"floor": [], "before": [], "after": []}
    cpu: dict[str, list[float]] = {"before": [], "after": []}
    with measure.broker() as running, scenarios.workspace("compare") as root:
        fleet = scenarios.fleet(running, args.devices)
        try:
            jobs = manifests.rollout(
                root / "jobs.d", scenarios.SCOPE, args.devices, manifests.SYNC_STEPS, "sync-3"
            )
            for number in range(args.rounds):
                floor = scenarios.floor_once(running, args.devices, args.window)
                times["floor"].append(float(json.loads(floor.stdout)["seconds"]))
                for label, tree in (("before", args.before), ("after", args.after)):
                    state = root / f"state-{label}-{number}"
                    done = _reconcile_with(tree, running, jobs, state, root)
                    times[label].append(done.seconds)
                    cpu[label].append(done.cpu)
                print(
                    f"round {number + 1}: floor {times['floor'][-1]:.2f} s, before"
                    f" {times['before'][-1]:.2f} s, after {times['after'][-1]:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            fleet.stop()
    ratios = {
        label: [t / f for t, f in zip(times[label], times["floor"], strict=True)]
        for label in ("before", "after")
    }
    print(f"{'':8} {'median':>8} {'best':>8} {'ratio med':>10} {'CPU med':>8}")
    for label in ("floor", "before", "after"):
        row = f"{label:8} {statistics.median(times[label]):7.2f}s {min(times[label]):7.2f}s"
        if label != "floor":
            row += (
                f" {statistics.median(ratios[label]):9.2f}x {statistics.median(cpu[label]):7.2f}s"
            )
        print(row)
    gain = 1 - statistics.median(times["after"]) / statistics.median(times["before"])
    print(f"after vs before: {gain * 100:+.1f} % wall time (median), interleaved rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
