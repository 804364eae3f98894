"""`jobrunner simulate --devices N`: a simulated Kura fleet on a broker, until interrupted."""

from __future__ import annotations

import dataclasses
import signal
import socket
import threading
import time
from typing import Any

import click

from jobrunner.cli.config import broker_settings
from jobrunner.cli.configfile import current
from jobrunner.device import BrokerSettings
from jobrunner.errors import ConfigError
from jobrunner.simulator.catalog import ALL_APPS
from jobrunner.simulator.config import (
    LEGACY_PROFILE,
    DeviceProfile,
    FleetConfig,
    Timing,
)
from jobrunner.simulator.faultspec import FaultSpecError, build_plan, parse_duration
from jobrunner.simulator.fleet import Fleet, FleetError

_FAULT_HELP = {
    "fail": "DEVICES:OP[=OUTCOME]  make OP fail (OUTCOME 400|404|500|failed|hash-mismatch).",
    "fail_rate": "[[DEVICES:]OP=]RATE  fail that share of OP (of every operation, of every"
    " device when not said), e.g. 0.05 or tag:canary:*=1.",
    "drop": "DEVICES[:OP]  do the work but lose the reply.",
    "drop_rate": "[[DEVICES:]OP=]RATE  lose that share of the replies.",
    "slow": "DEVICES[:OP]=DELAY  handle requests only after DELAY.",
    "late": "DEVICES[:OP][=DELAY]  reply after the runner gave up (default 35s).",
    "duplicate": "DEVICES[:OP][=COPIES]  send the reply more than once.",
    "disconnect": "DEVICES[:OP][=AFTER][/RECONNECT]  drop the connection on the first OP.",
    "offline": "DEVICES[=AFTER]  offline at start; connect AFTER (omitted: never).",
    "stray": "DEVICES[:KIND][=DELAY]  notify an operation nobody asked for.",
    "no_stick": "DEVICES[:PROPERTY]  answer a configuration PUT but keep PROPERTY's value (a"
    " glob of names; every one when omitted).",
    "snapshot_gone": "DEVICES  answer EXEC snapshot with an id whose snapshot is gone at once.",
    "rollback_fails": "DEVICES  answer EXEC rollback 200, then restore nothing.",
}


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except FaultSpecError as error:
        raise click.BadParameter(str(error)) from None


def _tag(spec: str) -> tuple[str, str]:
    devices, sep, tag = spec.partition("=")
    if not sep or not devices.strip() or not tag.strip():
        raise click.BadParameter(f"{spec!r}: write DEVICES=TAG, e.g. 'gw-000[1-2]=canary'")
    return devices.strip(), tag.strip()


def _version(spec: str) -> tuple[str, str]:
    devices, sep, version = spec.partition("=")
    if not sep or not devices.strip() or not version.strip():
        raise click.BadParameter(
            f"{spec!r}: write DEVICES=VERSION, e.g. 'gw-000[1-4]=KURA_5.5.0'",
            param_hint="--kura-version",
        )
    return devices.strip(), version.strip()


def _probe(address: BrokerSettings) -> None:
    """Fail at once, with the reason, when nothing listens at the broker's address."""
    try:
        socket.create_connection((address.host, address.port), timeout=5).close()
    except OSError as error:
        raise click.ClickException(
            f"cannot reach the broker at {address.host}:{address.port} ({error.strerror or error});"
            " start one (e.g. mosquitto) or give --broker"
        ) from None


def _fault_options(function: Any) -> Any:
    for name, text in reversed(_FAULT_HELP.items()):
        flag = "--" + name.replace("_", "-")
        function = click.option(flag, name, multiple=True, metavar="SPEC", help=text)(function)
    return function


def _profiles(
    base: DeviceProfile, legacy: tuple[str, ...], apps: tuple[str, ...]
) -> tuple[tuple[str, DeviceProfile], ...]:
    chosen: list[tuple[str, DeviceProfile]] = []
    for spec in apps:
        pattern, sep, names = spec.partition("=")
        wanted = tuple(n.strip() for n in names.split(",") if n.strip())
        if not sep or not pattern.strip():
            raise click.BadParameter(f"{spec!r}: write DEVICES=APP,APP", param_hint="--apps")
        chosen.append((pattern.strip(), dataclasses.replace(base, apps=wanted)))
    legacy_profile = dataclasses.replace(
        LEGACY_PROFILE,
        encoding=base.encoding,
        gzip=base.gzip,
        command_password=base.command_password,
    )
    chosen.extend((pattern, legacy_profile) for pattern in legacy)
    return tuple(chosen)


@click.command(context_settings={"max_content_width": 100})
@click.option(
    "--devices",
    "-n",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="How many gateways to simulate.",
)
@click.option(
    "--broker",
    metavar="URL",
    envvar="JOBRUNNER_BROKER",
    default="mqtt://127.0.0.1:1883",
    show_default=True,
    help="MQTT broker: mqtt://host:port or mqtts://host:port. Credentials and TLS files"
    " come as for the runner (JOBRUNNER_MQTT_USERNAME / _PASSWORD, the configuration's"
    " credentialsFile, caFile...), never in the URL.",
)
@click.option(
    "--account",
    metavar="NAME",
    envvar="JOBRUNNER_SCOPE",
    default="default",
    show_default=True,
    help="Kura account (the scope) in every topic.",
)
@click.option("--prefix", default="gw-", show_default=True, help="Client id prefix.")
@click.option(
    "--first",
    type=click.IntRange(0),
    default=1,
    show_default=True,
    help="Number of the first device.",
)
@click.option(
    "--digits",
    type=click.IntRange(1, 12),
    default=4,
    show_default=True,
    help="Least digits of the device numbers (gw-0001).",
)
@click.option(
    "--mode",
    type=click.Choice(["auto", "per-device", "shared"]),
    default="auto",
    show_default=True,
    help="Connection mode (see above).",
)
@click.option(
    "--connections",
    type=click.IntRange(1),
    default=2,
    show_default=True,
    help="Connections of the shared mode.",
)
@click.option(
    "--encoding",
    type=click.Choice(["kura-protobuf", "simple-json"]),
    default="kura-protobuf",
    show_default=True,
    help="Payload encoding.",
)
@click.option(
    "--gzip/--no-gzip",
    default=True,
    show_default=True,
    help="Gzip protobuf payloads when that makes them shorter (Kura's encode.gzip).",
)
@click.option(
    "--legacy",
    multiple=True,
    metavar="DEVICES",
    help="Older Kura gateways: only CMD-V1, CONF-V1, DEPLOY-V2, ASSET-V1.",
)
@click.option(
    "--apps", multiple=True, metavar="DEVICES=APP,...", help="The exact apps of some devices."
)
@click.option(
    "--kura-version",
    "versions",
    multiple=True,
    metavar="DEVICES=VERSION",
    help="The kura_version some devices report in their BIRTH, e.g. 'gw-000[1-4]=KURA_5.5.0'"
    " (for label selectors such as kura.version>=5.4).",
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="DEVICES=TAG",
    help="Give these devices a tag, for the faults' tag:TAG (give them the same in the"
    " DeviceList).",
)
@click.option(
    "--command-password",
    metavar="TEXT",
    default=None,
    help="Password every CMD-V1 request must carry.",
)
@click.option(
    "--download-time",
    metavar="DURATION",
    default="2s",
    show_default=True,
    callback=_duration,
    help="How long a package download takes.",
)
@click.option(
    "--install-time",
    metavar="DURATION",
    default="500ms",
    show_default=True,
    callback=_duration,
    help="How long an install or uninstall takes.",
)
@click.option(
    "--connect-rate",
    type=click.FloatRange(0),
    default=0.0,
    help="Births per second at start (0: all at once).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fault rates.")
@_fault_options
@click.option(
    "--start-timeout",
    metavar="DURATION",
    default="60s",
    show_default=True,
    callback=_duration,
    help="How long the devices may take to come up.",
)
@click.option(
    "--run-for",
    metavar="DURATION",
    default=None,
    callback=_duration,
    help="Stop by itself after this long (default: run until interrupted).",
)
def simulate(
    devices: int,
    broker: str,
    account: str,
    prefix: str,
    first: int,
    digits: int,
    mode: str,
    connections: int,
    encoding: str,
    gzip: bool,
    legacy: tuple[str, ...],
    apps: tuple[str, ...],
    versions: tuple[str, ...],
    tags: tuple[str, ...],
    command_password: str | None,
    download_time: float,
    install_time: float,
    connect_rate: float,
    seed: int,
    start_timeout: float,
    run_for: float | None,
    **faults: tuple[str, ...],
) -> None:
    """Run a simulated fleet of Eclipse Kura / ESF gateways on an MQTT broker.

    \b
    Each device speaks Kura's request/response protocol exactly as a real
    gateway does: it publishes a BIRTH when it connects (and a DC when it
    stops cleanly; an MQTT will, LWT, when it drops), and answers the control
    requests of every job step on $EDC/ACCOUNT/DEVICE/APP/METHOD/...:
      CMD-V1      EXEC command (a small shell: echo, uname, df, free, sleep,
                  true, false, reboot, /opt/acme/agent/bin/agent-check, ...)
      CONF-V1     GET/PUT configurations[/PID] (esf:configurations XML)
      DEPLOY-V2   GET bundles|packages|download|install, EXEC start|stop/ID,
                  EXEC download|install|uninstall with progress notifications
      ASSET-V1    EXEC read|write, GET assets
      KEYS-V1     keystores, entries, certificate, keypair, delete
      CERT-V1     POST/DEL certificates (jobrunner's device certificate contract)
      ANSIBLE-V1  SUBMIT (activities, with notifications)
    The devices run until Ctrl-C or SIGTERM; then they publish DC and the
    command exits 0.

    \b
    Connection modes:
      per-device  one MQTT connection per device, with its own will (LWT);
                  the broker sees real gateways. For up to a few hundred.
      shared      --connections connections, each subscribed to the control
                  topics of many devices; the fleet publishes BIRTH, DC and
                  LWT on a device's behalf. For thousands (10,000 is fine).
      auto        per-device up to 200 devices, shared above.

    \b
    Faults (each option may repeat). DEVICES is a client id, a glob, a
    comma list (gw-0007, gw-00[1-3]?, gw-0001,gw-0005) or tag:TAG; OP:
      command configuration configuration-get snapshots snapshot rollback
      bundle-start bundle-stop bundles packages download download-status
      download-cancel install install-status uninstall asset-write asset-read
      assets keystores keystore-certificate keystore-keypair keystore-delete
      certificate-install certificate-revoke activity other
    or a group: * (all, the default), steps, keystore, certificate.
    DELAY/AFTER are durations: 500ms, 3s, 2m, 1h.

    \b
    Examples:
      jobrunner simulate -n 24 --account acme
      jobrunner simulate -n 24 --account acme --fail gw-0007:bundle-stop=400 \\
          --slow 'gw-000[2-4]=3s' --offline gw-0012=30s --legacy gw-0020,gw-0021
      jobrunner simulate -n 10000 --mode shared --fail-rate steps=0.01 --seed 7
      jobrunner simulate -n 50 --fail gw-0003:download=hash-mismatch \\
          --disconnect gw-0009:download=1s/10s --stray gw-0004:install
      jobrunner simulate -n 20 --tag 'gw-000[1-2]=canary' \\
          --fail-rate 'tag:canary:bundle-start=1'
      jobrunner simulate -n 6 --kura-version 'gw-000[1-2]=KURA_5.5.0' \
          --legacy 'gw-000[4-6]'
    """
    try:
        plan = build_plan(seed=seed, **faults)
    except FaultSpecError as error:
        raise click.UsageError(str(error)) from None
    try:
        address = broker_settings(current(click.get_current_context()), broker, None)
    except ConfigError as error:
        raise click.BadParameter(str(error), param_hint="--broker") from None
    profile = DeviceProfile(
        encoding=encoding,  # type: ignore[arg-type]
        gzip=gzip,
        command_password=command_password,
    )
    unknown = {a for spec in apps for a in spec.partition("=")[2].split(",") if a} - set(ALL_APPS)
    if unknown:
        raise click.UsageError(
            f"--apps: unknown app(s) {', '.join(sorted(unknown))}; known: {', '.join(ALL_APPS)}"
        )
    config = FleetConfig(
        devices=devices,
        broker=address,
        account=account,
        prefix=prefix,
        first=first,
        digits=digits,
        mode=mode,  # type: ignore[arg-type]
        connections=connections,
        profile=profile,
        profiles=_profiles(profile, legacy, apps),
        versions=tuple(_version(spec) for spec in versions),
        tags=tuple(_tag(spec) for spec in tags),
        faults=plan,
        timing=Timing(
            download_seconds=download_time,
            install_seconds=install_time,
            uninstall_seconds=install_time,
        ),
        connect_rate=connect_rate,
        observe=False,
        start_timeout=start_timeout,
    )
    _probe(address)
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():  # signals reach only this one
        previous = {
            s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)
        }
    fleet = Fleet(config)
    try:
        started = time.monotonic()
        try:
            fleet.start()
        except FleetError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"fleet up in {time.monotonic() - started:.1f}s: {fleet.describe()}")
        stop.wait(run_for)
    finally:
        fleet.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    received = fleet.count()  # answered or not: a request for an app it lacks gets nothing
    click.echo(
        f"fleet stopped: {len(fleet.devices)} devices disconnected, {received} requests received"
    )
