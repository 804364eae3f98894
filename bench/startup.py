"""Start-up of the command line: `jobrunner --help`, `status`, and a `reconcile` with nothing
to do, as ratios to a bare interpreter start measured in the same run.

    python -m bench.startup [--rounds 9] [--compare BEFORE]

With `--compare BEFORE` (a folder holding another revision's `jobrunner` package, e.g.
`git worktree add /tmp/before HEAD~5`), both revisions are measured in alternation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench import measure

JOB = """\
apiVersion: jobrunner/v1
kind: DeviceList
metadata: {scope: bench}
devices: [{clientId: gw-0001}]
"""


def _commands(root: Path, broker: str) -> dict[str, list[str]]:
    jobs, state = root / "jobs.d", root / "state"
    return {
        "python -c pass": [measure.PYTHON, "-c", "pass"],
        "jobrunner --help": [*measure.JOBRUNNER, "--help"],
        "jobrunner status": [*measure.JOBRUNNER, "status", "--state-dir", str(state)],
        "jobrunner reconcile": [
            *measure.JOBRUNNER, "reconcile", "--jobs-dir", str(jobs), "--state-dir", str(state),
            "--broker", broker, "--scope", "bench", "--client-id", "bench-startup",
        ],
    }  # fmt: skip


def _time(command: list[str], tree: Path | None, cwd: Path) -> float:
    # Run outside the checkout: `python -m` puts the working directory first on sys.path.
    measure.JOBRUNNER_PATH[:] = [tree.resolve()] if tree is not None else []
    try:
        return measure.run(command, timeout=120, cwd=cwd).check(0).seconds
    finally:
        measure.JOBRUNNER_PATH.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--compare", type=Path, default=None, help="another revision's folder")
    args = parser.parse_args(argv)
    trees: dict[str, Path | None] = {"this": None}
    if args.compare is not None:
        trees = {"before": args.compare, "after": None}
    with measure.broker() as running, tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "jobs.d").mkdir()
        (root / "jobs.d" / "devices.yaml").write_text(JOB)
        (root / "state").mkdir()
        commands = _commands(root, running.url)
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for label, tree in trees.items():
                for name, command in commands.items():
                    times.setdefault((label, name), []).append(_time(command, tree, root))
    print(f"{'':8} {'command':22} {'median':>8} {'ratio to python':>16}")
    for label in trees:
        base = statistics.median(times[(label, "python -c pass")])
        for name in commands:
            median = statistics.median(times[(label, name)])
            print(f"{label:8} {name:22} {median:7.3f}s {median / base:15.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
