"""`jobrunner validate`: check manifests without touching state or devices."""

from __future__ import annotations

from pathlib import Path

import click

from jobrunner.cli.options import echo_json, manifest_options
from jobrunner.manifests import load_manifests


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@manifest_options
@click.option("-q", "--quiet", is_flag=True, help="Print errors only, not warnings.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text for people, json for scripts, github for annotations in a GitHub Actions job.",
)
@click.pass_context
def validate(
    ctx: click.Context,
    paths: tuple[Path, ...],
    jobs_dir: Path,
    scope: str,
    quiet: bool,
    output: str,
) -> None:
    """Check manifests: YAML, every field, and the rules across files.

    Reads every *.yaml and *.yml file under each PATH (default: the jobs
    directory), every document of each file, and prints one line per problem:

    \b
        FILE:LINE: message
        FILE:LINE: warning: message

    All files are checked in one run; one broken file does not hide the errors
    of another. Warnings (a target device or tag that matches no registered
    device, a file with no documents) do not fail the check.

    `-o json` prints one object: files, counts, and the diagnostics (file, line,
    severity, message), for editors and scripts. `-o github` prints each problem
    as a GitHub Actions annotation (`::error file=F,line=L::message`), which
    the pull request shows on the line.

    Exit status: 0 when there is no error, 1 when there is at least one.
    """
    result = load_manifests(list(paths) or [jobs_dir], default_scope=scope)
    if output == "json":
        shown = [d for d in result.diagnostics if d.is_error or not quiet]
        echo_json(
            {
                "files": [str(f) for f in result.files],
                "jobs": len(result.jobs),
                "devices": sum(len(d) for d in result.devices.values()),
                "errors": len(result.errors),
                "warnings": len(result.warnings),
                "diagnostics": [d.as_json() for d in shown],
            }
        )
        ctx.exit(1 if result.errors else 0)
    for diagnostic in result.diagnostics:
        if diagnostic.is_error or not quiet:
            click.echo(diagnostic.as_github() if output == "github" else str(diagnostic))
    errors, warnings = len(result.errors), len(result.warnings)
    summary = (
        f"{len(result.files)} file(s): {len(result.jobs)} job(s),"
        f" {sum(len(d) for d in result.devices.values())} device(s),"
        f" {errors} error(s), {warnings} warning(s)"
    )
    click.echo(summary, err=True)
    if not result.files:
        click.echo(
            f"no *.yaml or *.yml files under {', '.join(map(str, paths or [jobs_dir]))}", err=True
        )
    ctx.exit(1 if errors else 0)
