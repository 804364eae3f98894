"""`jobrunner cron next` prints UTC fire times, or exits 2 with a clear message."""

from __future__ import annotations

from click.testing import CliRunner

from jobrunner.cli.main import cli


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["cron", "next", *args])
    return result.exit_code, result.output


def test_next_fire_times_in_a_zone_printed_in_utc() -> None:
    code, output = run(
        "0 15 10 ? * MON-FRI", "--tz", "Europe/Rome", "--after", "2026-12-17T00:00:00Z", "-n", "3"
    )
    assert code == 0
    assert output.splitlines() == [
        "2026-12-17T09:15:00Z",
        "2026-12-18T09:15:00Z",
        "2026-12-21T09:15:00Z",
    ]


def test_fewer_lines_when_it_fires_less_often() -> None:
    code, output = run("0 0 12 1 1 ? 2027", "--after", "2026-01-01T00:00:00Z", "-n", "5")
    assert (code, output.splitlines()) == (0, ["2027-01-01T12:00:00Z"])
    code, output = run("0 0 12 1 1 ? 2020", "--after", "2026-01-01T00:00:00Z")
    assert (code, output) == (0, "")


def test_an_invalid_expression_exits_2_naming_the_field() -> None:
    code, output = run("0 0 2 * * 8")
    assert code == 2
    assert "invalid Quartz cron expression" in output and "day-of-week" in output


def test_an_invalid_zone_or_time_exits_2() -> None:
    assert run("0 0 2 * * ?", "--tz", "Mars/Olympus")[0] == 2
    assert run("0 0 2 * * ?", "--after", "tomorrow")[0] == 2
    assert run("0 0 2 * * ?", "--after", "2026-12-01T00:00:00")[0] == 2
