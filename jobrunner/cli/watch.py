"""`jobrunner watch`: the daemon."""

from __future__ import annotations

import logging
import sys
import time

import click

from jobrunner.cli.config import pass_runner_config
from jobrunner.engine.daemon import DRAIN, Daemon
from jobrunner.engine.service import RunnerConfig


@click.command()
@pass_runner_config
@click.option(
    "--debounce",
    type=click.IntRange(50, 60_000),
    default=800,
    show_default=True,
    metavar="MS",
    help="Quiet time after a change before reconciling (a burst is one).",
)
@click.option(
    "--drain",
    type=click.FloatRange(0, 3600),
    default=DRAIN,
    show_default=True,
    metavar="SECONDS",
    help="On SIGTERM, wait this long at most for the replies of requests in flight"
    " (keep it under the service manager's stop timeout).",
)
def watch(config: RunnerConfig, debounce: int, drain: float) -> None:
    """Run the daemon: reconcile on every change, fire schedules, react to connects.

    Reconciles at start, then after every change of the jobs directory (a burst
    of saves or a `git pull` is one reconcile); fires interval and cron
    schedules on time (a fire missed while the daemon was down runs once);
    runs device-connect schedules when a target device publishes its BIRTH;
    runs executions of different jobs at the same time. A broken manifest
    marks only its own job as failing to reconcile.

    While it runs, it owns the state directory: `jobrunner start`, `stop` and
    `reconcile` hand their requests to it.

    Logs one line per decision on standard error. SIGTERM or SIGINT stops
    dispatching at once, records the replies of requests in flight (for at most
    --drain seconds; a second signal leaves at once) and exits 0. Executions stay
    RUNNING: a restart resumes them where they stopped, and awaits what was still
    running on the devices.
    """
    logging.Formatter.converter = time.gmtime
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03dZ %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    Daemon(config, debounce_ms=debounce, drain=drain).run()
