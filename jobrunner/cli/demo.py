"""`jobrunner demo`: a broker, a simulated fleet and the daemon, on the example jobs, live.

Everything runs on this machine and stops when the demo ends: an MQTT broker (Mosquitto when
it is installed, else the embedded amqtt broker, or the one given with --broker), a
simulated fleet of the example registry's gateways with a realistic mix (some slow, one that
rejects a bundle stop, one offline that connects later), and `jobrunner watch` on the
example jobs with a scratch state directory.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import click

from jobrunner.cli.config import broker_settings
from jobrunner.cli.configfile import current
from jobrunner.cli.progress import ProgressView, progress_of
from jobrunner.engine.status import rollout_stand
from jobrunner.errors import StateError
from jobrunner.manifests import manifest_files
from jobrunner.simulator.broker import BrokerError, free_port, start_broker
from jobrunner.simulator.config import FleetConfig
from jobrunner.simulator.faults import (
    DelayFault,
    FailFault,
    FaultPlan,
    OfflineFault,
    Selector,
)
from jobrunner.simulator.fleet import Fleet, FleetError
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir
from jobrunner.state.records import counts_text
from jobrunner.web.address import parse_address, url_of

DEMO_SCOPE = "acme"
LATE_DEVICE = "gw-0012"
MIX = FaultPlan(
    slow=(DelayFault(Selector("gw-0009,gw-0010,gw-0019"), 1.5),),
    fail=(
        FailFault(Selector("gw-0011", "bundle-stop"), 400),
        # The test benches reject the OPC UA upgrade: the rollout's canary wave catches it.
        FailFault(Selector("tag:lab", "command"), 500),
    ),
    offline=(OfflineFault(LATE_DEVICE),),  # connected by the demo: see _show_until_settled
)
FLEET_TAGS = (("gw-0022,gw-0023,gw-0024", "lab"),)
"""The tags the faults select by, as the example DeviceList gives them."""


@click.command()
@click.option(
    "--jobs-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="The example manifests (default: ./jobs.d when it holds manifests, else the"
    " examples installed with jobrunner).",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to record state (default: a new temporary directory).",
)
@click.option("--broker", metavar="URL", help="Use this broker instead of starting one.")
@click.option(
    "--devices",
    type=click.IntRange(1, 500),
    default=24,
    show_default=True,
    help="Simulated gateways gw-0001..; the examples declare 24.",
)
@click.option("--keep", is_flag=True, help="Keep everything running after the rollout.")
@click.option(
    "--http",
    metavar="HOST:PORT",
    default="127.0.0.1:0",
    show_default=True,
    help="Where the daemon serves its dashboard (port 0: a free one); its URL is printed.",
)
@click.option(
    "--timeout",
    type=float,
    default=120.0,
    show_default=True,
    help="Give up (exit 1) if the rollout has not settled after this many seconds.",
)
def demo(
    jobs_dir: Path | None,
    state_dir: Path | None,
    broker: str | None,
    devices: int,
    keep: bool,
    http: str,
    timeout: float,
) -> None:
    """Watch jobrunner roll out the example jobs to a simulated fleet.

    Starts an MQTT broker (Mosquitto when installed, else the embedded one), a
    fleet of simulated Kura gateways (gw-0009, gw-0010, gw-0019 answer slowly,
    gw-0011 rejects the bundle stop, gw-0012 is offline and connects once the
    first executions have ended, the test benches gw-0022..24 reject the OPC UA upgrade), and
    the `watch` daemon on the example jobs, then shows the executions live.
    The example jobs with a `run` token start at once; gw-0012 gets the Modbus
    rollout when it connects (a device-connect schedule); the OPC UA rollout's
    canary wave fails, so it is ABORTED before any production bridge is
    touched. Ends with a summary and where the state and logs were written.
    Meanwhile the daemon serves its dashboard on --http: open the printed URL
    (with --keep, it stays up after the rollout).

    Exit status: 0 when every execution ended, 1 if the rollout did not settle
    within --timeout.
    """
    jobs_dir = jobs_dir or examples_dir()
    if not any(manifest_files([jobs_dir])) or not jobs_dir.is_dir():
        raise click.ClickException(
            f"the example manifests are not in {jobs_dir}: point --jobs-dir at them (the"
            f" installed ones are in {INSTALLED_EXAMPLES})"
        )
    folder = state_dir or Path(tempfile.mkdtemp(prefix="jobrunner-demo-")) / "state"
    loaded = current(click.get_current_context())
    with contextlib.ExitStack() as stack:
        try:
            if broker is None:
                running = stack.enter_context(start_broker())
                broker = running.url
                click.echo(f"broker: {running.kind} on {broker}", err=True)
            # The fleet reaches the broker as the runner does: credentials and TLS files from
            # the environment or the configuration file, never from the URL.
            settings = broker_settings(loaded, broker, None)
            fleet = stack.enter_context(
                Fleet(
                    FleetConfig(
                        devices=devices,
                        broker=settings,
                        account=DEMO_SCOPE,
                        faults=MIX,
                        tags=FLEET_TAGS,
                    )
                )
            )
        except (BrokerError, FleetError, OSError) as error:
            raise click.ClickException(f"the demo could not start: {error}") from None
        click.echo(f"fleet: {fleet.describe()}", err=True)
        log = folder.parent / "watch.log"
        host, port = parse_address(http)
        port = port or free_port(host)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        daemon = stack.enter_context(_daemon(jobs_dir, folder, broker, log, loaded.path, address))
        click.echo(f"daemon: jobrunner watch (its log: {log})", err=True)
        click.echo(f"dashboard: {url_of(host, port)}", err=True)
        settled = _show_until_settled(StateDir(folder), fleet, timeout, daemon, log)
        _summary(StateDir(folder), log)
        if keep:
            click.echo("--keep: everything keeps running; press Ctrl-C to stop.", err=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)
    sys.exit(0 if settled else 1)


@contextlib.contextmanager
def _daemon(
    jobs_dir: Path, state_dir: Path, broker: str, log: Path, config: Path | None, http: str
) -> Iterator[subprocess.Popen[bytes]]:
    state_dir.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jobrunner",
                "watch",
                "--jobs-dir",
                str(jobs_dir),
                "--state-dir",
                str(state_dir),
                "--broker",
                broker,
                "--scope",
                DEMO_SCOPE,
                "--client-id",
                "jobrunner-demo",
                "--debounce",
                "200",
                "--http",
                http,
                *(["--config", str(config)] if config is not None else []),
            ],
            stdout=output,
            stderr=output,
        )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _show_until_settled(
    state: StateDir, fleet: Fleet, timeout: float, daemon: subprocess.Popen[bytes], log: Path
) -> bool:
    """Show the executions until none runs, the late device is in, and all stays quiet."""
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    with ProgressView.for_output() as view:
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-5:])
                raise click.ClickException(
                    f"the watch daemon exited ({daemon.returncode}); the end of its log:\n{tail}"
                )
            jobs = _loaded(state)
            shown = [progress_of(j, e) for j in jobs for e in sorted(j.executions)]
            view.show(shown)
            running = any(p.status == "RUNNING" for p in shown)
            late_in = LATE_DEVICE not in fleet.devices or fleet.devices[LATE_DEVICE].online
            if shown and not running and not late_in:
                # On an event, not after a time: however busy the machine, the late device
                # comes after the first executions, and gets its run from its BIRTH.
                fleet.connect(LATE_DEVICE)
            elif shown and not running:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 3.0:
                    return True
            else:
                quiet_since = None
            time.sleep(0.3)
    return False


def _loaded(state: StateDir) -> list[JobState]:
    jobs = []
    for scope, name in state.jobs():
        try:
            job = JobState.load(state, scope, name)
        except (StateError, OSError):  # being written by the daemon: shown next time
            continue
        job.close()
        jobs.append(job)
    return jobs


def _summary(state: StateDir, log: Path) -> None:
    click.echo("\nsummary:", err=True)
    for job in _loaded(state):
        counts = counts_text(job.counts())
        runs = len(job.executions)
        click.echo(f"  {job.label:<38} {runs} execution(s); targets: {counts}", err=True)
        if job.record.rollout is not None:
            rollout = rollout_stand(job.record, job.last_execution)
            why = f": {rollout.reason}" if rollout.reason else ""
            click.echo(f"      rollout {rollout.state}{why}", err=True)
        for target in sorted(job.targets, key=lambda t: t.client_id):
            if target.status.value == "PROCESS_FAILED":
                click.echo(f"      {target.client_id}: {target.message}", err=True)
    where = shlex.quote(str(state.root))
    again = command_again()
    click.echo(
        f"\nstate written to {state.root}\n"
        f"  {again} status --state-dir {where}\n"
        f"  {again} status acme/modbus-driver-1.2 --state-dir {where}\n"
        f"  {again} logs acme/modbus-driver-1.2 --state-dir {where}\n"
        f"  {again} status acme/opcua-bridge-3.0 --state-dir {where}   (the canary)\n"
        f"daemon log: {log}",
        err=True,
    )


INSTALLED_EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "jobs.d"
"""The example manifests, installed with the package (the checkout's jobs.d links to them)."""


def examples_dir(here: Path | None = None) -> Path:
    """./jobs.d when it holds manifests (a checkout, or the operator's own), else the
    examples installed with jobrunner: `pipx install` then `jobrunner demo` works anywhere."""
    local = (here or Path.cwd()) / "jobs.d"
    if local.is_dir() and any(manifest_files([local])):
        return local
    return INSTALLED_EXAMPLES


def command_again() -> str:
    """How to run this jobrunner again from the same shell: `jobrunner` when that is the one
    on PATH, else the path that ran it (`.venv/bin/jobrunner` after `make demo`), or
    `python -m jobrunner` with this interpreter."""
    ran = Path(sys.argv[0])
    if ran.name != "jobrunner":  # python -m jobrunner
        return f"{shlex.quote(_shown(Path(sys.executable)))} -m jobrunner"
    found = shutil.which("jobrunner")
    if found is not None and Path(found).resolve() == ran.resolve():
        return "jobrunner"
    return shlex.quote(_shown(ran))


def _shown(path: Path) -> str:
    """A path as short as it can be said from here: relative under the current folder."""
    absolute = path if path.is_absolute() else Path.cwd() / path
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)
