"""`jobrunner devices`: the device registry, as recorded and as declared."""

from __future__ import annotations

from pathlib import Path

import click

from jobrunner.cli.options import (
    echo_json,
    manifest_options,
    output_option,
    reading_state,
    state_options,
)
from jobrunner.cli.status import coloured, pad, relative
from jobrunner.engine.status import devices_view
from jobrunner.manifests import load_manifests
from jobrunner.manifests.selectors import Selector, SelectorError, parse_selector
from jobrunner.state.registry import DeviceRegistry, DeviceStatus

STATUS_COLOURS = {"CONNECTED": "PROCESS_OK", "MISSING": "PROCESS_FAILED"}


def _selector(_ctx: click.Context, _param: click.Parameter, text: str | None) -> Selector | None:
    if text is None:
        return None
    try:
        return parse_selector(text)
    except SelectorError as error:
        raise click.BadParameter(str(error)) from None


@click.command()
@state_options
@manifest_options
@output_option
@click.option(
    "--status",
    "only_status",
    type=click.Choice([s.value for s in DeviceStatus]),
    multiple=True,
    help="Show only devices with this connection status (repeatable).",
)
@click.option("--tag", "only_tag", multiple=True, help="Show only devices with this tag.")
@click.option(
    "-l",
    "--selector",
    metavar="SELECTOR",
    callback=_selector,
    help="Show only the devices this label selector matches, as a job's targets.selector"
    " would choose them now: site=turin,kura.version>=5.4",
)
def devices(
    state_dir: Path,
    state_db: str | None,
    jobs_dir: Path,
    scope: str,
    output: str,
    only_status: tuple[str, ...],
    only_tag: tuple[str, ...],
    selector: Selector | None,
) -> None:
    """List the devices: connection status, last seen, firmware, applications, tags.

    Each device of each scope, as the runner recorded it from its lifecycle
    messages (CONNECTED after a BIRTH, DISCONNECTED after a DC, MISSING after an
    LWT, UNKNOWN when none was heard), with the tags and display names its
    DeviceList declares (from the jobs directory, when there is one).
    Discovered devices (that connected without being declared) are listed too.

    `-l SELECTOR` lists only the devices a label selector matches, kubectl's
    syntax over the DeviceList labels and what the devices reported in their
    BIRTH (kura.model, kura.firmware, kura.version, kura.app):
    `jobrunner devices -l 'site=turin,kura.version>=5.4'`.

    `-o json` prints one object per device: scope, clientId, declared, status,
    lastSeen, displayName, tags, labels, model, modelId, firmware,
    frameworkVersion, applicationIds.
    """
    state = reading_state(state_dir, state_db)
    manifests = load_manifests([jobs_dir], default_scope=scope) if jobs_dir.is_dir() else None
    with DeviceRegistry(state, autoflush=False) as registry:
        rows = devices_view(registry, manifests, selector)
    rows = [
        row
        for row in rows
        if (not only_status or row["status"] in only_status)
        and (not only_tag or set(only_tag) & set(row["tags"]))
    ]
    if output == "json":
        echo_json(rows)
        return
    if not rows:
        if selector is not None:
            click.echo(f"no known device matches {selector.text!r}")
            return
        click.echo("no device known yet: declare them in a DeviceList, or let them connect")
        return
    click.echo(
        f"{'DEVICE':<32} {'STATUS':<13} {'LAST SEEN':<36} {'FIRMWARE':<14} {'TAGS':<24} APPS"
    )
    for row in rows:
        status = coloured(row["status"], STATUS_COLOURS.get(row["status"], ""))
        apps = ",".join(row["applicationIds"] or []) or "-"
        tags = ",".join(row["tags"]) or ("-" if row["declared"] else "(discovered)")
        click.echo(
            f"{row['scope'] + '/' + row['clientId']:<32} {pad(status, 13)}"
            f" {relative(row['lastSeen']):<36} {row['firmware'] or '-':<14} {tags:<24} {apps}"
        )
