"""`make bench` / `python -m bench`: every scenario of docs/performance.md, and one table.

    python -m bench [--only sync,async,memory,jobs,soak,history,held] [--repeat 2] [--results DIR]

Starts its own stock mosquitto (on a free port) and a simulated fleet of 10,000 devices in a
process of its own; the floor, each `jobrunner` command and the loopback engine run in
processes of their own too, so that each has its own interpreter lock and the two cores
are shared as in production (broker, devices and runner on one machine). Times are wall
times from process start to exit; peak memory is each process's own maximum RSS.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import held, history, instructions, measure, scenarios
from bench.measure import broker, machine
from bench.report import Row, markdown_table, text_table
from jobrunner.simulator.broker import RunningBroker

SCENARIOS = ("sync", "async", "memory", "jobs", "soak", "history", "held")


def _say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios to run")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--windows", type=_ints, default=[100, 300, 1000], help="floor windows")
    parser.add_argument("--repeat", type=int, default=2, help="floor/runner pairs (best counts)")
    parser.add_argument("--memory-sizes", type=_ints, default=[10_000, 30_000, 100_000])
    parser.add_argument("--jobs", type=int, default=1_000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument(
        "--results", type=Path, default=Path("bench/results"), help="where results.{md,json} go"
    )
    parser.add_argument(
        "--jobrunner-path",
        type=Path,
        default=None,
        help="measure the jobrunner package found in this folder (another revision)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    chosen = set(args.only.split(","))
    if unknown := chosen - set(SCENARIOS):
        parser.error(f"unknown scenarios {sorted(unknown)}; choose among {SCENARIOS}")
    if any(not 1 <= w <= 1000 for w in args.windows):
        parser.error("floor windows are between 1 and 1,000 (stock mosquitto drops beyond)")
    if args.jobrunner_path is not None:
        if not (args.jobrunner_path / "jobrunner" / "__init__.py").is_file():
            parser.error(f"{args.jobrunner_path} holds no jobrunner package")
        measure.JOBRUNNER_PATH.append(args.jobrunner_path.resolve())

    rows, details = _measure(args, chosen)
    print(f"machine: {details['machine']}\n")
    print(text_table(rows))
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "results.md").write_text(
        f"Machine: {details['machine']}\n\n{markdown_table(rows)}\n"
    )
    (args.results / "results.json").write_text(
        json.dumps({"rows": [r.as_dict() for r in rows], **details}, indent=2, default=str)
    )
    _say(f"results in {args.results}/results.md and results.json")
    return 0 if all(row.holds is not False for row in rows) else 1


def _measure(args: argparse.Namespace, chosen: set[str]) -> tuple[list[Row], dict[str, object]]:
    rows: list[Row] = []
    where = machine()
    details: dict[str, object] = {
        "machine": where,
        "started": datetime.now(UTC).isoformat(),
        "jobrunner": str(args.jobrunner_path or measure.ROOT),
    }
    _say(where)
    with broker() as running:
        _say(f"mosquitto (stock settings) on {running.url}")
        if chosen & {"sync", "async"}:
            _say(f"starting a simulated fleet of {args.devices:,} devices (shared connections)")
            fleet = scenarios.fleet(running, args.devices)
            _say(fleet.started)
            try:
                if "sync" in chosen:
                    _say(f"floor at windows {args.windows} and reconcile --wait, x{args.repeat}")
                    found, more = scenarios.sync_and_floor(
                        running, fleet, args.devices, args.windows, args.repeat
                    )
                    rows += found
                    details["sync"] = more
                    rows.append(_instructions(running, args, details))
                if "async" in chosen:
                    _say("reconcile --wait of Package Download / Install")
                    version = f"2.4.{int(time.time())}"
                    rows.append(scenarios.async_rollout(running, args.devices, version))
            finally:
                fleet.stop()
        if "memory" in chosen:
            _say(f"engine without devices at {args.memory_sizes} targets")
            found, more = scenarios.memory_scaling(args.memory_sizes)
            rows += found
            details["memory"] = more
        if "jobs" in chosen:
            _say(f"{args.jobs:,} jobs: plan, reconcile, no-change reconcile, idle daemon")
            found, more = scenarios.many_jobs(running, args.devices, args.jobs, args.idle_seconds)
            rows += found
            details["jobs"] = more
    if "soak" in chosen:
        _say("1,000 executions of a cron job in minutes: the runner's memory")
        row, more = scenarios.soak()
        rows.append(row)
        details["soak"] = more
    if "history" in chosen:
        _say("disk of a job fired 300 times: with keepExecutions 20, and without a retention")
        rows += history.rows()
    if "held" in chosen:
        _say(
            f"a daemon holding {args.jobs:,} jobs x 100 targets against 1 job of"
            f" {args.jobs * 100:,}: start, resync, takeover; plan and status of 5,000 jobs"
        )
        figures = held.measure_all(args.jobs, 100, 5_000)
        rows += held.rows(figures)
        details["held"] = figures
    return rows, details


def _instructions(
    running: RunningBroker, args: argparse.Namespace, details: dict[str, object]
) -> Row:
    """Instructions per round trip, runner and floor, on the fleet already running."""
    if not instructions.available():
        return instructions.skipped()
    small, large = min(1_000, args.devices // 4), min(4_000, args.devices)
    _say(f"instructions per round trip (valgrind), {small:,} and {large:,} devices")
    counted = instructions.count(running, small, large)
    details["instructions"] = {
        "floor_per_round_trip": counted.floor,
        "runner_per_round_trip": counted.runner,
        "totals": counted.totals,
    }
    return instructions.row(counted, small, large)


if __name__ == "__main__":
    sys.exit(main())
