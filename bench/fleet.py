"""A simulated fleet in a process of its own, so that it has its own interpreter lock.

    python -m bench.fleet --broker mqtt://127.0.0.1:PORT --devices 10000 --account bench

Prints `ready N` once every device has published its BIRTH, then runs until its standard
input closes (the benchmark keeps a pipe open and closes it to stop the fleet).
"""

from __future__ import annotations

import argparse
import sys
import time

from jobrunner.simulator.config import FleetConfig, Timing
from jobrunner.simulator.fleet import Fleet

BENCH_TIMING = Timing(download_seconds=2.0, install_seconds=0.5, progress_steps=4)
"""The simulator's defaults, written out: a download takes 2 s, its install 0.5 s."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet")
    parser.add_argument("--broker", required=True)
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--account", default="bench")
    parser.add_argument("--connections", type=int, default=2)
    args = parser.parse_args(argv)
    config = FleetConfig(
        devices=args.devices,
        broker=args.broker,
        account=args.account,
        digits=6,
        mode="shared",
        connections=args.connections,
        timing=BENCH_TIMING,
        observe=False,
        start_timeout=300.0,
    )
    started = time.monotonic()
    with Fleet(config):
        print(f"ready {args.devices} {time.monotonic() - started:.1f}s", flush=True)
        sys.stdin.read()  # until the benchmark closes the pipe


if __name__ == "__main__":
    main()
