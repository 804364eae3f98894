"""`jobrunner completion bash|zsh|fish`: the shell's completion script, and what it completes
beyond commands and options: job names and client ids, read from the recorded state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from click.shell_completion import CompletionItem, get_completion_class

from jobrunner.state.layout import StateDir
from jobrunner.state.opening import open_state
from jobrunner.state.registry import DeviceRegistry

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_JOBRUNNER_COMPLETE"
"""The variable click's completion scripts set when they ask `jobrunner` for completions."""
SHOWN = 500
"""Completions offered at most: a shell lists no more usefully."""


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script of SHELL (bash, zsh or fish).

    \b
    Commands, options, job names and client ids complete; the last two are read
    from the state (--state-dir or JOBRUNNER_STATE_DIR, as the command line says).
    \b
      bash:  eval "$(jobrunner completion bash)"      in ~/.bashrc
      zsh:   eval "$(jobrunner completion zsh)"       in ~/.zshrc
      fish:  jobrunner completion fish > ~/.config/fish/completions/jobrunner.fish
    """
    root = click.get_current_context().find_root().command  # the whole command tree
    made = get_completion_class(shell)
    assert made is not None, f"click knows {shell}"
    click.echo(made(root, {}, "jobrunner", COMPLETE_VAR).source())


@contextmanager
def _state(ctx: click.Context) -> Iterator[StateDir | None]:
    """The state the command line points at, or None (completion never fails aloud)."""
    params = ctx.params
    folder = params.get("state_dir") or os.environ.get("JOBRUNNER_STATE_DIR") or "state"
    database = params.get("state_db") or os.environ.get("JOBRUNNER_STATE_DB")
    try:
        state = open_state(Path(folder), database, existing=True)
    except Exception:
        yield None
        return
    try:
        yield state
    finally:
        state.storage.close()


def complete_jobs(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Job names recorded in the state: NAME, and SCOPE/NAME when typed with a scope."""
    with _state(ctx) as state:
        if state is None:
            return []
        found = sorted(state.jobs())
    names = (f"{scope}/{name}" if "/" in incomplete else name for scope, name in found)
    return sorted({n for n in names if n.startswith(incomplete)})[:SHOWN]


def complete_client_ids(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Client ids of the devices the state's registry knows, with their scope as help."""
    with _state(ctx) as state:
        if state is None:
            return []
        with DeviceRegistry(state) as registry:
            found = {
                (device.client_id, scope)
                for scope in registry.scopes()
                for device in registry.scope(scope)
                if device.client_id.startswith(incomplete)
            }
    return [CompletionItem(c, help=s) for c, s in sorted(found)[:SHOWN]]
