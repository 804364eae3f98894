"""What `plan` shows is what reconcile and the engine will do: every difference of a conflict,
the targets a start skips, a job whose manifest is gone, a window in each device's zone.

The engine runs in memory on a fake clock (no broker); `plan` is the command, as run by hand.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jobrunner.cli.main import cli
from jobrunner.cli.plan import plan_lines
from jobrunner.engine.link.memory import Handler, Sent, error, ok
from jobrunner.engine.rollout.gate import estimate
from jobrunner.engine.service.runner import Runner, make_plan
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir

from ..conftest import FakeClock, memory_runner


def _answers(sent: Sent) -> Any:
    return ok()


@dataclass
class World:
    root: Path
    clock: FakeClock

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs.d"

    def write(self, name: str, text: str) -> Path:
        self.jobs_dir.mkdir(exist_ok=True)
        path = self.jobs_dir / name
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    def job(self, spec: str, name: str = "rollout") -> Path:
        """A Job manifest of scope acme; `spec` is the YAML under `spec:` (dedented)."""
        body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
        self.jobs_dir.mkdir(exist_ok=True)
        path = self.jobs_dir / f"{name}.yaml"
        path.write_text(
            f"apiVersion: jobrunner/v1\nkind: Job\nmetadata: {{name: {name}, scope: acme}}\n"
            f"spec:\n{body}\n"
        )
        return path

    def devices(self, *entries: str) -> None:
        listed = "\n".join(f"  - {entry}" for entry in entries)
        self.write(
            "devices.yaml",
            "apiVersion: jobrunner/v1\nkind: DeviceList\nmetadata: {scope: acme}\n"
            f"devices:\n{listed}\n",
        )

    def reconcile(self, handler: Handler = _answers) -> None:
        """One reconcile in memory, driven until what it started has ended."""
        runner: Runner
        runner, _ = memory_runner(self.root, self.clock, handler)
        with runner:
            applied = runner.apply(runner.plan(runner.load()))
            runner.wait(applied.started)

    def plan(self, *extra: str) -> tuple[int, str]:
        result = CliRunner().invoke(
            cli,
            [
                "plan",
                "--jobs-dir",
                str(self.jobs_dir),
                "--state-dir",
                str(self.root / "state"),
                "--scope",
                "acme",
                *extra,
            ],
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result.exit_code, result.output

    def plan_json(self) -> dict[str, Any]:
        code, output = self.plan("-o", "json")
        assert code in (0, 1, 2), output
        return json.loads(output)  # type: ignore[no-any-return]

    def job_json(self, name: str = "rollout") -> dict[str, Any]:
        (found,) = [j for j in self.plan_json()["jobs"] if j["name"] == name]
        return found  # type: ignore[no-any-return]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    (tmp_path / "state").mkdir()
    yield World(tmp_path, FakeClock())


# -- a conflict lists every difference ---------------------------------------------------------

FROZEN = """
    targets: {devices: [gw-1, gw-2], tags: [line-3]}
    steps:
      - name: stop
        definition: Bundle Stop
        properties: {bundleId: 42}
      - name: say
        definition: Command Execution
        timeout: 30s
        properties: {command: echo, arguments: [a]}
    run: "1"
"""

CHANGED = """
    targets: {devices: [gw-1, gw-3], tags: [line-3]}
    steps:
      - name: stop
        definition: Bundle Stop
        properties: {bundleId: 43}
      - name: say
        definition: Command Execution
        timeout: 45s
        properties: {command: echo, arguments: [b]}
    run: "1"
"""


def test_a_conflict_lists_every_difference_with_both_values_at_its_line(world: World) -> None:
    world.job(FROZEN)
    world.reconcile()
    manifest = world.job(CHANGED)

    code, output = world.plan()

    assert code == 1, output
    for line in (
        f'{manifest}:5: targets devices: ["gw-1", "gw-2"] -> ["gw-1", "gw-3"]',
        f"{manifest}:9: step 0 'stop' properties.bundleId: 42 -> 43",
        f'{manifest}:12: step 1 \'say\' timeout: "30s" -> "45s"',
        f'{manifest}:13: step 1 \'say\' properties.arguments: ["a"] -> ["b"]',
    ):
        assert line in output, output
    assert "targets, step 0 'stop', step 1 'say' changed after execution 1 froze them" in output
    conflict = world.job_json()["conflict"]
    assert [(d["what"], d["line"]) for d in conflict["differences"]] == [
        ("targets devices", 5),
        ("step 0 'stop' properties.bundleId", 9),
        ("step 1 'say' timeout", 12),
        ("step 1 'say' properties.arguments", 13),
    ]


def test_a_step_added_after_the_freeze_is_listed_whole(world: World) -> None:
    world.job(FROZEN)
    world.reconcile()
    manifest = world.job(
        FROZEN.replace(
            '    run: "1"',
            "      - {name: again, definition: Bundle Start, properties: {bundleId: 42}}\n"
            '    run: "1"',
        )
    )

    code, output = world.plan()

    assert code == 1, output
    assert f"{manifest}:14: step 2 'again': (absent) -> {{" in output, output
    assert "step 0" not in output


# -- a start shows what it runs, and what it skips and why ---------------------------------------


def _gw3_fails(sent: Sent) -> Any:
    return error(500, "bundle 42 is busy") if sent.client_id == "gw-3" else ok()


def _retried(run: str) -> str:
    return f"""
        targets: {{devices: [gw-1, gw-2, gw-3]}}
        steps:
          - {{name: stop, definition: Bundle Stop, properties: {{bundleId: 42}}}}
        retry: {{maxAttempts: 2}}
        run: "{run}"
    """


def test_plan_shows_the_targets_a_start_skips_as_the_engine_skips_them(world: World) -> None:
    world.job(_retried("1"))
    world.reconcile(_gw3_fails)  # gw-1, gw-2 done; gw-3 failed once
    world.job(_retried("2"))

    code, output = world.plan("-v")

    assert code == 2, output
    assert "acme/rollout" in output and "1 of 3 target(s) to run, 2 skipped (frozen)" in output
    assert "to run: gw-3" in output
    assert (
        "skipped: gw-1 (done: PROCESS_OK at its last step),"
        " gw-2 (done: PROCESS_OK at its last step)"
    ) in output
    planned = world.job_json()
    world.reconcile(_gw3_fails)  # what the engine ran is what the plan said it would
    job = JobState.load(StateDir(world.root / "state"), "acme", "rollout")
    job.close()
    assert planned["run"] == sorted(job.executions[2].targets) == ["gw-3"]

    world.job(_retried("3"))  # gw-3 failed twice: the retry limit leaves it out too
    planned = world.job_json()
    assert planned["run"] == []
    assert planned["skipped"][-1] == {
        "clientId": "gw-3",
        "reason": "gave up after 2 attempt(s) (retry.maxAttempts 2)",
    }


# -- a window in each device's zone: the estimate opens it where the engine does ---------------


def test_the_estimate_opens_a_device_window_in_each_devices_zone_or_says_it_is_unknown(
    world: World,
) -> None:
    world.devices(
        "{clientId: gw-1, timezone: Asia/Tokyo}",  # 01:00 there is 16:00 UTC the day before
        "{clientId: gw-2}",  # no zone: the engine opens its window in UTC
    )
    world.job("""
        targets: {devices: [gw-1, gw-2]}
        steps:
          - {name: stop, definition: Bundle Stop, properties: {bundleId: 42}}
        rollout:
          window: {cron: "0 0 1 ? * *", duration: 1h, timezone: device}
        run: "1"
    """)
    noon = datetime(2027, 1, 10, 12, 0, tzinfo=UTC).timestamp()

    result = make_plan(world.jobs_dir, world.root / "state", "acme", now=noon)
    lines = "\n".join(plan_lines(result, verbose=True))

    assert (
        "estimate: starts from 2027-01-10T16:00:00Z, the last target at the earliest"
        " 2027-01-11T01:00:00Z"
    ) in lines, lines
    assert (
        "estimate: 1 target(s) have no timezone in their DeviceList (gw-2): their window"
        " (timezone: device) opens in UTC, as the engine opens it"
    ) in lines, lines


def test_the_engine_starts_a_device_window_target_when_the_estimate_says(world: World) -> None:
    world.devices("{clientId: gw-1, timezone: Asia/Tokyo}")
    world.job("""
        targets: {devices: [gw-1]}
        steps:
          - {name: stop, definition: Bundle Stop, properties: {bundleId: 42}}
        rollout:
          window: {cron: "0 0 1 ? * *", duration: 1h, timezone: device}
        run: "1"
    """)
    plan = make_plan(world.jobs_dir, world.root / "state", "acme", now=world.clock.now)
    (job,) = plan.jobs
    rollout = job.declared.manifest.spec.rollout if job.declared else None
    assert rollout is not None
    first, _ = estimate([job.targets], rollout, world.clock.now, job.zones)
    assert first > world.clock.now

    runner, link = memory_runner(world.root, world.clock, _answers)
    with runner:
        runner.apply(runner.plan(runner.load()))
        world.clock.now = first - 1
        runner.engine.step(0)
        assert link.sent == [], "the window is not open yet in Tokyo"
        world.clock.now = first
        runner.engine.step(0)
        assert [s.client_id for s in link.sent] == ["gw-1"]


# -- a job whose manifest is gone says so --------------------------------------------------------


def test_a_job_whose_manifest_was_removed_is_shown_orphaned_not_unchanged(world: World) -> None:
    world.devices("{clientId: gw-1}")  # a manifest stays: an empty directory removes nothing
    manifest = world.job(FROZEN.replace("gw-1, gw-2", "gw-1"))
    world.reconcile()
    manifest.unlink()

    code, output = world.plan("-v")
    assert code == 2 and "- remove    acme/rollout" in output, output

    world.reconcile()  # marks it orphaned: from now on nothing is left to do
    code, output = world.plan("-v")

    assert code == 0, output
    assert "= orphaned  acme/rollout" in output, output
    assert "unchanged" not in output
    assert "manifest removed: orphaned (stopped, history kept; nothing starts it)" in output
    assert world.job_json()["orphaned"] is True
