"""`jobrunner watch`: the daemon."""

from __future__ import annotations

import sys

import click

from jobrunner.cli import logs
from jobrunner.cli.config import pass_runner_config
from jobrunner.engine.core.executions import DRAIN, MAX_DRAIN
from jobrunner.engine.service.daemon import Companion, Daemon
from jobrunner.engine.service.runner import RunnerConfig
from jobrunner.manifests.secrets import SecretResolver
from jobrunner.notify.delivery import Notifier
from jobrunner.state.opening import open_state


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
    type=click.FloatRange(0, MAX_DRAIN),
    default=DRAIN,
    show_default=True,
    metavar="SECONDS",
    help="On SIGTERM, wait this long at most for the replies of requests in flight"
    " (keep it under the service manager's stop timeout).",
)
@click.option(
    "--http",
    "http",
    metavar="HOST:PORT",
    envvar="JOBRUNNER_HTTP",
    default=None,
    help="Serve the dashboard, the JSON API, /metrics and /healthz there, read-only"
    " (8080 or 127.0.0.1:8080: this machine only; any other address needs --http-token).",
)
@click.option(
    "--http-token",
    metavar="TOKEN",
    envvar="JOBRUNNER_HTTP_TOKEN",
    default=None,
    help="The token every request to --http must carry (Authorization: Bearer TOKEN, or"
    " ?token=TOKEN once in a browser). Prefer the environment variable: a command line is"
    " visible to every user of the machine.",
)
@click.option(
    "--log-format",
    type=click.Choice(logs.FORMATS),
    envvar="JOBRUNNER_LOG_FORMAT",
    default="text",
    show_default=True,
    help="text: a line for a person; json: one JSON object a line (time, level, message, and"
    " scope, job, execution, clientId, requestId where they apply), for a log shipper.",
)
@click.option(
    "--log-level",
    type=click.Choice(logs.LEVELS),
    envvar="JOBRUNNER_LOG_LEVEL",
    default="info",
    show_default=True,
    help="The least severe records logged (debug adds what the MQTT session does).",
)
def watch(
    config: RunnerConfig,
    debounce: int,
    drain: float,
    http: str | None,
    http_token: str | None,
    log_format: str,
    log_level: str,
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

    Logs one line per decision on standard error (--log-format json: one JSON
    object a line). SIGTERM or SIGINT stops
    dispatching at once, records the replies of requests in flight (for at most
    --drain seconds; a second signal leaves at once) and exits 0; 75 when the
    state could not be written (it says what is not recorded). Executions stay
    RUNNING: a restart resumes them where they stopped, and awaits what was still
    running on the devices.

    With --http, it serves a live dashboard of the jobs, targets, waves,
    executions, logs and devices, the JSON API of `status -o json`
    (/api/v1/jobs, /api/v1/jobs/SCOPE/NAME, /api/v1/devices), Prometheus
    metrics (/metrics) and health checks: /livez (503 when the engine loop
    stopped turning) and /readyz, or /healthz (503 with the reason when the
    broker is not connected, the state cannot be written or the loop is
    stuck). Under systemd
    (Type=notify) it tells READY and feeds the watchdog (WatchdogSec=).

    It posts the events that Notification manifests ask for (execution.ended,
    rollout.aborted, rollout.wave.approved, rollout.wave.passed, target.failed) as
    CloudEvents, at least once: what a receiver did not take waits in the state
    directory's outbox, across restarts, and is retried with backoff. Each notification is posted
    in a lane of its own (a receiver that hangs delays no other), which keeps
    at most its maxBacklog undelivered events (the oldest are dropped beyond);
    `status --notifications` shows what waits.
    """
    logs.configure(log_format, log_level)
    secrets = SecretResolver.from_environment(config.secrets_dir)
    # The companions' own connection; a missing state directory is refused before anything.
    state = open_state(config.state_dir, config.state_db, existing=True)
    notifier = Notifier(state, secrets, config.broker.client_id)
    companions: list[Companion] = [notifier]
    if http:
        from jobrunner.web.server import Dashboard  # the HTTP stack only when asked for

        companions.append(Dashboard(http, http_token, state, notifier.outcomes))
    sys.exit(Daemon(config, debounce_ms=debounce, drain=drain, companions=companions).run())
