"""The command group class of `jobrunner` and its subgroups: commands listed in the order a
user meets them, library errors as user errors, "did you mean" for commands and options."""

from __future__ import annotations

import difflib
from typing import Any

import click

from jobrunner.errors import JobrunnerError


class Group(click.Group):
    """Commands listed in the order a user meets them; library errors become user errors."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            close = difflib.get_close_matches(name, list(self.commands), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise click.UsageError(f"no such command '{name}'{hint}", ctx=ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        ctx.meta["jobrunner.args"] = [*ctx.protected_args, *ctx.args]  # click clears them
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as error:  # click runs its hint into the sentence
            close = difflib.get_close_matches(error.option_name, error.possibilities or [], n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise click.UsageError(f"no such option {error.option_name}{hint}", error.ctx) from None
        except JobrunnerError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:  # a second Ctrl-C (see cli.signals): state is crash-safe
            ctx.exit(130)
