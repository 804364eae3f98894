"""The command group class of `jobrunner` and its subgroups: commands listed in the order a
user meets them, library errors as user errors, "did you mean" for commands and options, and
commands imported when they are run, so that `jobrunner --help` (or `status`) does not pay
for the engine, the MQTT client or the simulated fleet."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

import click

from jobrunner.errors import JobrunnerError


class Group(click.Group):
    """Commands listed in the order a user meets them; library errors become user errors.

    `lazy`: name -> ("module:attribute", short help) of commands imported on first use;
    `prepare` is applied to each command when it is loaded."""

    def __init__(
        self,
        *args: Any,
        lazy: dict[str, tuple[str, str]] | None = None,
        prepare: Callable[[click.Command], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}
        self.prepare = prepare

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.lazy, *(name for name in self.commands if name not in self.lazy)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in self.lazy:
            module, _, attribute = self.lazy[name][0].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if self.prepare is not None:
                self.prepare(command)
            self.add_command(command, name)
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of `--help`, from the registered short help: nothing imported."""
        rows = [
            (
                name,
                self.lazy[name][1]
                if name in self.lazy
                else self.commands[name].get_short_help_str(),
            )
            for name in self.list_commands(ctx)
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise click.UsageError(f"no such command '{name}'{hint}", ctx=ctx)
        return super().resolve_command(ctx, args)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as error:  # an option of the group itself (`jobrunner --x`)
            close = difflib.get_close_matches(error.option_name, error.possibilities or [], n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            _usage_error(ctx, f"no such option {error.option_name}{hint}", 2)
        except click.UsageError as error:
            _usage_error(ctx, error.format_message(), error.exit_code)
        raise AssertionError("unreachable: ctx.exit raises")

    def invoke(self, ctx: click.Context) -> Any:
        ctx.meta["jobrunner.args"] = [*ctx.protected_args, *ctx.args]  # click clears them
        try:
            try:
                return super().invoke(ctx)
            except click.NoSuchOption as error:  # click runs its hint into the sentence
                close = difflib.get_close_matches(error.option_name, error.possibilities or [], n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise click.UsageError(
                    f"no such option {error.option_name}{hint}", error.ctx
                ) from None
        except JobrunnerError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(error.exit_code)
        except click.UsageError as error:
            _usage_error(error.ctx or ctx, error.format_message(), error.exit_code)
        except click.ClickException as error:  # one prefix for every error: `error: `
            click.echo(f"error: {error.format_message()}", err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:  # a second Ctrl-C (see cli.signals): state is crash-safe
            ctx.exit(130)


def _usage_error(ctx: click.Context, message: str, code: int) -> None:
    """A usage error as every error is said (`error: ...`), after the usage line."""
    click.echo(ctx.get_usage(), err=True)
    if ctx.help_option_names:
        click.echo(f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help.", err=True)
    click.echo(f"error: {message}", err=True)
    ctx.exit(code)
