"""The cost of cron schedules: the next fire of 1,000 schedules, and of rare or impossible days.

    python -m bench.cron [--rounds 5]

The daemon asks every cron schedule of every job for its next fire at start and after each
fire. The baseline, measured in the same run, is the conversion of the same instant into
each schedule's time zone (what any evaluation costs at the least); the table gives the best
of the rounds and the ratio to the baseline. Rare days (29 February 2096, a fifth Friday) and
impossible ones (30 February) must cost about as much as a common expression: the evaluator
jumps over months, it never steps through days.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from jobrunner.cron import parse_quartz
from tests.cron.vectors import parse, section

AFTER = datetime(2026, 11, 27, 11, 0, tzinfo=UTC)
RARE = ("0 0 0 29 FEB ? 2096", "0 0 0 ? * 6#5", "0 0 0 30 2 ?", "0 0 0 31W 2 ?")


def _best(rounds: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cron")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    runnable = [
        v
        for name in ("fires", "fuzz", "dst_fuzz", "syntax")
        for v in section(name)
        if v["valid"] and v["eval"] == "ok"
    ][:1000]
    schedules = [(parse(v["expr"]), ZoneInfo(v["zone"])) for v in runnable]

    def baseline() -> None:
        for _, zone in schedules:
            AFTER.astimezone(zone)

    def next_fires() -> None:
        for expression, zone in schedules:
            expression.next_after(AFTER, zone)

    floor = _best(args.rounds, baseline)
    fires = _best(args.rounds, next_fires)
    rome = ZoneInfo("Europe/Rome")
    common = parse_quartz("0 0 2 ? * MON-FRI")
    one = _best(args.rounds, lambda: common.next_after(AFTER, rome))
    print(f"{len(schedules):,} schedules, best of {args.rounds} rounds")
    print(f"  baseline (the instant in each zone)  {floor * 1000:8.2f} ms")
    print(f"  next fire of each                    {fires * 1000:8.2f} ms  {fires / floor:7.1f}x")
    print(f"  one common expression                {one * 1e6:8.1f} us")
    for text in RARE:
        rare = parse_quartz(text)
        took = _best(args.rounds, lambda rare=rare: rare.next_after(AFTER, rome))  # type: ignore[misc]
        print(f"  {text:<36} {took * 1e6:8.1f} us  {took / one:7.1f}x the common one")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
