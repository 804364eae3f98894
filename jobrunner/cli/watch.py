"""`jobrunner watch`: the daemon."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click

from jobrunner.cli.config import runner_config
from jobrunner.cli.options import runner_options
from jobrunner.engine.daemon import DRAIN, Daemon


@click.command()
@runner_options
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
def watch(
    jobs_dir: Path,
    scope: str,
    state_dir: Path,
    broker: str,
    client_id: str | None,
    max_in_flight: int,
    require_signed: bool,
    secrets_dir: Path | None,
    debounce: int,
    drain: float,
) -> None:
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
    config = runner_config(
        jobs_dir, state_dir, scope, broker, client_id, max_in_flight, require_signed, secrets_dir
    )
    Daemon(config, debounce_ms=debounce, drain=drain).run()
