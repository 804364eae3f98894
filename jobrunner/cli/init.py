"""`jobrunner init`: make a new, empty state, on purpose."""

from __future__ import annotations

from pathlib import Path

import click

from jobrunner.cli.options import command_state, state_options


@click.command()
@state_options
def init(state_dir: Path, state_db: str | None) -> None:
    """Make a new, empty state: the state directory, or the tables of a database.

    The commands that start executions (`reconcile`, `watch`, `start`) never
    make a state themselves: a mistyped --state-dir, or the default relative
    `state` in another folder, would look like a state where nothing was
    recorded, and every job would run again on every device. Make it once,
    here; a state that exists already is left as it is.

    With --state-db, the database must exist: its tables are made on first use,
    and a database written by a newer jobrunner is refused.
    """
    if state_db:
        state = command_state(state_dir, state_db)  # prepares the tables, or says why not
        click.echo(f"{state.describe()}: ready")
        return
    if state_dir.is_dir():
        click.echo(f"state directory {state_dir} exists already; left as it is")
        return
    state_dir.mkdir(parents=True)
    click.echo(f"state directory {state_dir} made; `jobrunner reconcile` records jobs there")
