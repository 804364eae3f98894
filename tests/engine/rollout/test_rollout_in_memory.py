"""A rollout's gates without a broker: the in-memory link plays the devices, a fake clock
passes time, so soaks, rates and maintenance windows are tested without waiting."""

from __future__ import annotations

import itertools
import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jobrunner.cli.main import cli
from jobrunner.device import KuraPayload
from jobrunner.engine.link.memory import MemoryLink, Sent, error, ok
from jobrunner.engine.rollout.gate import estimate, rate_after
from jobrunner.engine.rollout.waves import stable_order
from jobrunner.engine.service.runner import Runner
from jobrunner.engine.status import job_view
from jobrunner.manifests.rollout import Rollout
from jobrunner.state.layout import StateDir
from jobrunner.state.records import ExecutionStatus, ExecutionSummary
from jobrunner.web.reader import FleetReader
from jobrunner.web.views import Views

from ..conftest import FakeClock, memory_runner

STOP = "- {name: stop, definition: Bundle Stop, timeout: 30s, properties: {bundleId: 42}}"


def at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class Fleet:
    """The devices: who fails, and when each request came (on the engine's clock)."""

    clock: FakeClock
    failing: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    requests: list[tuple[float, str]] = field(default_factory=list)

    def __call__(self, sent: Sent) -> KuraPayload | None:
        self.requests.append((self.clock.now, sent.client_id))
        if sent.client_id in self.silent:
            return None
        return error(500, "bundle not found") if sent.client_id in self.failing else ok()

    def first_request(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for moment, client_id in self.requests:
            found.setdefault(client_id, moment)
        return found


@dataclass
class World:
    root: Path
    clock: FakeClock
    fleet: Fleet
    link: MemoryLink | None = None

    def job(
        self,
        rollout: str | None = None,
        devices: int = 10,
        run: str = "1",
        retry: str | None = None,
        zones: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        steps: str = STOP,
    ) -> list[str]:
        jobs = self.root / "jobs.d"
        jobs.mkdir(exist_ok=True)
        clients = [f"gw-{n:02d}" for n in range(1, devices + 1)]
        listed = []
        for client in clients:
            extra = ""
            if zones and client in zones:
                extra += f", timezone: {zones[client]}"
            if tags and client in tags:
                extra += f", tags: [{tags[client]}]"
            listed.append(f"  - {{clientId: {client}{extra}}}")
        (jobs / "devices.yaml").write_text(
            "apiVersion: jobrunner/v1\nkind: DeviceList\nmetadata: {scope: acme}\ndevices:\n"
            + "\n".join(listed)
            + "\n"
        )
        spec = (
            "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: rollout, scope: acme}\n"
            "spec:\n  targets: {all: true}\n  steps:\n"
            + textwrap.indent(textwrap.dedent(steps).strip(), "    ")
            + f'\n  run: "{run}"\n'
        )
        if rollout is not None:
            spec += (
                "  rollout:\n" + textwrap.indent(textwrap.dedent(rollout).strip(), "    ") + "\n"
            )
        if retry is not None:
            spec += f"  retry: {retry}\n"
        (jobs / "job.yaml").write_text(spec)
        return clients

    def runner(self) -> Runner:
        runner, self.link = memory_runner(self.root, self.clock, self.fleet)
        return runner


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = FakeClock(at("2027-01-10T12:00:00Z"))
    yield World(tmp_path, clock, Fleet(clock))


def start(runner: Runner) -> tuple[str, str, int]:
    (started,) = runner.apply(runner.plan(runner.load())).started
    return started


def run_for(runner: Runner, clock: FakeClock, seconds: float, step: float = 1.0) -> None:
    """Turn the engine while the fake clock moves on by `step` each turn."""
    end = clock.now + seconds
    while clock.now < end:
        runner.engine.step(0)
        runner.engine.step(0)
        clock.now += step
    runner.engine.step(0)


def until_ended(
    runner: Runner, clock: FakeClock, ref: tuple[str, str, int], limit: float = 7200
) -> ExecutionSummary:
    end = clock.now + limit
    while clock.now < end:
        runner.engine.step(0)
        runner.engine.step(0)
        summary = runner.job_state(ref[0], ref[1]).executions[ref[2]]
        if summary.status is not ExecutionStatus.RUNNING:
            return summary
        clock.now += 1
    raise AssertionError(f"execution {ref} still running after {limit}s of engine time")


def log_of(world: World, execution: int = 1) -> str:
    path = world.root / f"state/scopes/acme/jobs/rollout/executions/{execution:06d}/log.txt"
    return path.read_text()


WAVES = """
waves:
  - {name: canary, devices: [gw-07]}
  - {name: early, size: 30%}
  - {name: rest}
"""


def test_no_request_goes_to_a_wave_before_the_wave_before_it_passed(world: World) -> None:
    clients = world.job(WAVES)
    with world.runner() as runner:
        ref = start(runner)
        summary = until_ended(runner, world.clock, ref)
        view = job_view(runner.job_state("acme", "rollout"))
    assert summary.status is ExecutionStatus.TERMINATED
    early = stable_order(c for c in clients if c != "gw-07")[:3]  # 30% of 9, rounded up
    order = [c for _, c in world.fleet.requests]
    assert order[0] == "gw-07"
    assert set(order[1:4]) == set(early)
    assert set(order[4:]) == set(clients) - {"gw-07", *early}
    rollout = view["rollout"]
    assert rollout["state"] == "passed"
    assert [(w["name"], w["targets"], w["state"]) for w in rollout["waves"]] == [
        ("canary", 1, "passed"),
        ("early", 3, "passed"),
        ("rest", 6, "passed"),
    ]
    assert {t["clientId"]: t["wave"] for t in view["targets"]}["gw-07"] == "canary"
    text = log_of(world)
    assert "rollout: wave 'canary': 1/1 PROCESS_OK = 100% >= 100%; passed" in text


def test_a_wave_that_cannot_pass_aborts_and_leaves_later_waves_unstarted(world: World) -> None:
    clients = world.job(WAVES + "successThreshold: 100%\nmaxPerMinute: 60\n")
    early = stable_order(c for c in clients if c != "gw-07")[:3]
    world.fleet.failing = {early[0]}
    with world.runner() as runner:
        ref = start(runner)
        summary = until_ended(runner, world.clock, ref)
        view = job_view(runner.job_state("acme", "rollout"))
    assert summary.status is ExecutionStatus.ABORTED
    assert summary.message is not None and "wave 'early' cannot pass" in summary.message
    rest = set(clients) - {"gw-07", *early}
    assert [c for _, c in world.fleet.requests] == ["gw-07", early[0]], "nothing after it"
    targets = {t["clientId"]: t for t in view["targets"]}
    for client in rest:
        assert (targets[client]["stepIndex"], targets[client]["status"]) == (0, "PROCESS_AWAITING")
        assert "not started: the execution was aborted" in targets[client]["message"]
    assert view["rollout"]["state"] == "aborted"
    assert summary.message == f"aborted: {view['rollout']['reason']}"
    assert [w["state"] for w in view["rollout"]["waves"]] == ["passed", "failed", "pending"]


def test_a_later_execution_goes_on_from_the_wave_that_failed(world: World) -> None:
    clients = world.job(WAVES)
    early = stable_order(c for c in clients if c != "gw-07")[:3]
    world.fleet.failing = {early[0]}
    with world.runner() as runner:
        until_ended(runner, world.clock, start(runner))
    world.fleet.failing = set()
    world.fleet.requests.clear()
    world.job(WAVES, run="2")  # the device is fixed: a new run token
    with world.runner() as runner:
        summary = until_ended(runner, world.clock, start(runner))
        view = job_view(runner.job_state("acme", "rollout"))
    assert summary.status is ExecutionStatus.TERMINATED
    sent = [c for _, c in world.fleet.requests]
    assert "gw-07" not in sent, "the canary passed: it is not run again"
    assert sent[0] == early[0], "the failed wave's failed target goes first"
    assert set(sent[1:]) == set(clients) - {"gw-07", *early}
    assert view["rollout"]["state"] == "passed"


def test_a_soak_fails_the_wave_when_a_device_lost_its_connection_and_is_not_back(
    world: World,
) -> None:
    world.job(WAVES + "soak: 10m\n")
    with world.runner() as runner:
        ref = start(runner)
        run_for(runner, world.clock, 5)
        assert world.link is not None
        world.link.lost("acme", "gw-07", "LWT", at=world.clock.now)
        run_for(runner, world.clock, 60)
        state = job_view(runner.job_state("acme", "rollout"))["rollout"]
        assert (state["state"], state["waves"][0]["state"]) == ("soaking", "soaking")
        summary = until_ended(runner, world.clock, ref)
    assert summary.status is ExecutionStatus.ABORTED
    assert summary.message is not None
    assert "wave 'canary' after its soak: 0/1 PROCESS_OK and connected = 0% < 100%" in (
        summary.message
    )
    assert [c for _, c in world.fleet.requests] == ["gw-07"]
    assert "wave 'canary' soaking: gw-07 lost its connection (LWT)" in log_of(world)


def test_a_device_back_before_the_end_of_the_soak_passes(world: World) -> None:
    world.job(WAVES + "soak: 10m\n")
    with world.runner() as runner:
        ref = start(runner)
        run_for(runner, world.clock, 5)
        assert world.link is not None
        world.link.lost("acme", "gw-07", "LWT", at=world.clock.now)
        run_for(runner, world.clock, 120)
        world.link.birth("acme", "gw-07", at=world.clock.now)
        began = world.clock.now
        summary = until_ended(runner, world.clock, ref)
    assert summary.status is ExecutionStatus.TERMINATED
    first = world.fleet.first_request()
    canary_done = min(first.values())
    assert all(m >= canary_done + 600 for c, m in first.items() if c != "gw-07"), (
        "the next wave starts after the soak"
    )
    assert began < max(first.values())
    assert "soaked 10m; passed" in log_of(world)


def test_max_per_minute_spreads_the_starts_evenly(world: World) -> None:
    world.job("maxPerMinute: 30\n", devices=6)
    with world.runner() as runner:
        until_ended(runner, world.clock, start(runner))
    moments = sorted(world.fleet.first_request().values())
    gaps = [b - a for a, b in itertools.pairwise(moments)]
    assert all(1.5 <= gap <= 2.5 for gap in gaps), gaps  # 30 a minute: one every 2 s


def test_the_ramp_grows_the_rate_with_the_successes(world: World) -> None:
    world.job("ramp: {base: 6, factor: 4, every: 2 succeeded}\n", devices=6)
    with world.runner() as runner:
        until_ended(runner, world.clock, start(runner), limit=600)
    moments = sorted(world.fleet.first_request().values())
    gaps = [b - a for a, b in itertools.pairwise(moments)]
    assert gaps[0] >= 9, gaps  # 6 a minute
    assert gaps[-1] <= 3, gaps  # 24, then 96 a minute after 2 and 4 successes


def test_the_abort_rule_counts_across_the_execution(world: World) -> None:
    clients = world.job("maxPerMinute: 60\nabort: {failureThreshold: 50%, minFinished: 2}\n")
    order = stable_order(clients)
    world.fleet.failing = set(order[:2])
    with world.runner() as runner:
        summary = until_ended(runner, world.clock, start(runner))
    assert summary.status is ExecutionStatus.ABORTED
    assert summary.message == (
        "aborted: abort rule: 2/2 finished target(s) failed = 100% >= 50% (after at least 2)"
    )
    assert len(world.fleet.first_request()) < len(clients)


def test_a_window_in_a_zone_waits_across_the_spring_forward(world: World) -> None:
    # 02:30 does not exist in Rome on 2027-03-28: that day's window does not open.
    world.clock.now = at("2027-03-27T02:40:00Z")  # 03:40 in Rome: the 27th's window is over
    world.job('window: {cron: "0 30 2 ? * *", duration: 1h, timezone: Europe/Rome}\n', devices=2)
    with world.runner() as runner:
        ref = start(runner)
        run_for(runner, world.clock, 60)
        state = job_view(runner.job_state("acme", "rollout"))["rollout"]
        assert state["state"] == "waiting"
        assert "opens 2027-03-29T02:30:00+02:00 (Europe/Rome)" in state["reason"]
        world.clock.now = at("2027-03-28T01:00:00Z")  # 03:00 CEST, after the gap
        run_for(runner, world.clock, 60)
        assert world.fleet.requests == []
        world.clock.now = at("2027-03-29T00:29:00Z")  # 02:29 CEST on the 29th
        summary = until_ended(runner, world.clock, ref)
    assert summary.status is ExecutionStatus.TERMINATED
    assert min(world.fleet.first_request().values()) >= at("2027-03-29T00:30:00Z")


def test_a_window_in_each_devices_zone(world: World) -> None:
    zones = {"gw-01": "Asia/Tokyo", "gw-02": "America/New_York"}
    world.clock.now = at("2027-01-10T15:30:00Z")  # 00:30 in Tokyo, 10:30 in New York
    world.job('window: {cron: "0 0 0 ? * *", duration: 2h, timezone: device}\n', 2, zones=zones)
    with world.runner() as runner:
        ref = start(runner)
        run_for(runner, world.clock, 30)
        assert [c for _, c in world.fleet.requests] == ["gw-01"]
        world.clock.now = at("2027-01-11T05:00:00Z")  # midnight in New York
        until_ended(runner, world.clock, ref)
    assert world.fleet.first_request()["gw-02"] >= at("2027-01-11T05:00:00Z")


def test_retry_gives_up_after_max_attempts(world: World) -> None:
    world.job(None, devices=2, retry="{maxAttempts: 2}")
    world.fleet.failing = {"gw-01"}
    for token in ("1", "2", "3"):
        world.job(None, devices=2, retry="{maxAttempts: 2}", run=token)
        with world.runner() as runner:
            until_ended(runner, world.clock, start(runner))
            view = job_view(runner.job_state("acme", "rollout"))
    tried = [c for _, c in world.fleet.requests]
    assert tried.count("gw-01") == 2
    failed = next(t for t in view["targets"] if t["clientId"] == "gw-01")
    assert failed["status"] == "PROCESS_FAILED"
    assert failed["message"].startswith("gave up after 2 attempt(s) (retry.maxAttempts 2)")
    assert "target gw-01: gave up after 2 attempt(s)" in log_of(world, 3)


def test_chosen_targets_start_at_once_whatever_the_waves(world: World) -> None:
    world.job(WAVES + "maxPerMinute: 1\n")
    with world.runner() as runner:
        summary = runner.start_job("acme", "rollout", runner.load(), targets=["gw-03"])
        ref = ("acme", "rollout", summary.id)
        ended = until_ended(runner, world.clock, ref, limit=30)
    assert ended.status is ExecutionStatus.TERMINATED
    assert [c for _, c in world.fleet.requests] == ["gw-03"]
    assert ended.targets == ["gw-03"]


def test_a_restart_during_a_soak_goes_on_with_it(world: World) -> None:
    world.job(WAVES + "soak: 10m\n")
    with world.runner() as runner:
        ref = start(runner)
        run_for(runner, world.clock, 30)
    world.clock.now += 300
    with world.runner() as runner:
        runner.engine.step(0)
        state = job_view(runner.job_state("acme", "rollout"))["rollout"]
        assert state["waves"][0]["state"] == "soaking"
        summary = until_ended(runner, world.clock, ref)
    assert summary.status is ExecutionStatus.TERMINATED
    first = world.fleet.first_request()
    assert min(m for c, m in first.items() if c != "gw-07") >= first["gw-07"] + 600


def test_plan_lists_each_waves_devices_and_estimates_the_starts(world: World) -> None:
    clients = world.job(WAVES + "maxPerMinute: 60\nsoak: 10m\n")
    (world.root / "state").mkdir()
    args = ["--jobs-dir", str(world.root / "jobs.d"), "--state-dir", str(world.root / "state")]

    result = CliRunner().invoke(cli, ["plan", "-v", *args, "--scope", "acme"])

    assert result.exit_code == 2, result.output
    early = stable_order(c for c in clients if c != "gw-07")[:3]
    assert "wave canary (devices): gw-07" in result.output
    assert f"wave early (size 30%): {', '.join(early)}" in result.output
    assert "wave rest (remainder): " in result.output
    # 10 starts at 60 a minute, two soaks of 10m between the waves: at least 20m9s
    assert "(starts spread over 20m9s and the soaks, if every target succeeds" in result.output
    quiet = CliRunner().invoke(cli, ["plan", *args, "--scope", "acme"])
    assert "waves: canary 1, early 3, rest 6 (every device with -v)" in quiet.output
    as_json = json.loads(CliRunner().invoke(cli, ["plan", *args, "-o", "json"]).output)
    assert [w["name"] for w in as_json["jobs"][0]["waves"]] == ["canary", "early", "rest"]


def test_status_shows_the_rollout_and_each_targets_wave(world: World) -> None:
    world.job(WAVES + "successThreshold: 100%\nmaxPerMinute: 60\n")
    world.fleet.failing = {"gw-07"}
    with world.runner() as runner:
        until_ended(runner, world.clock, start(runner))
    args = ["--state-dir", str(world.root / "state"), "--scope", "acme"]

    table = CliRunner().invoke(cli, ["status", "rollout", *args]).output
    overview = CliRunner().invoke(cli, ["status", *args]).output

    assert "  rollout    aborted: wave 'canary': 0/1 PROCESS_OK = 0% < 100%" in table
    assert "    wave canary       failed   1 target(s) (devices): 1 failed; 0/1 PROCESS_OK" in table
    assert "    wave rest         pending  6 target(s) (remainder): 6 awaiting" in table
    assert "gw-07                    canary       0    PROCESS_FAILED" in table
    assert "[rollout aborted canary]" in overview
    assert "#1 ABORTED" in overview


def test_the_estimate_follows_the_ramp_as_the_gate_does() -> None:
    settings = Rollout.model_validate(
        {"ramp": {"base": 10, "factor": 2, "every": "5 succeeded"}, "maxPerMinute": 60}
    )
    first, last = estimate([[f"gw-{n}" for n in range(20)]], settings, now=1000.0)
    # 5 at 10/min (6 s apart), 5 at 20 (3 s), 5 at 40 (1.5 s), then 60 (the cap: 1 s)
    assert first == 1000.0
    assert last == pytest.approx(1000.0 + 5 * 6 + 5 * 3 + 5 * 1.5 + 4 * 1.0)
    assert rate_after(settings, 0) == 10 and rate_after(settings, 15) == 60


def _every_view(world: World) -> tuple[dict[str, Any], dict[str, Any], str, str]:
    """The job as `status -o json`, the dashboard's API, `status JOB` and `status` show it
    (read from the state directory, as they read it)."""
    args = ["--state-dir", str(world.root / "state"), "--scope", "acme"]
    as_json = json.loads(CliRunner().invoke(cli, ["status", "rollout", *args, "-o", "json"]).output)
    views = Views(FleetReader(StateDir(world.root / "state")))
    api = views.job("acme", "rollout")
    assert api is not None
    (row,) = views.jobs()
    assert row["rollout"] == {"state": api["rollout"]["state"], "wave": api["rollout"]["wave"]}
    table = CliRunner().invoke(cli, ["status", "rollout", *args]).output
    overview = CliRunner().invoke(cli, ["status", *args]).output
    return as_json, api, table, overview


def test_an_abort_rule_abort_shows_the_wave_aborted_with_the_rule(world: World) -> None:
    clients = world.job(
        WAVES + "successThreshold: 0%\nmaxPerMinute: 60\n"
        "abort: {failureThreshold: 50%, minFinished: 2}"
    )
    early = stable_order(c for c in clients if c != "gw-07")[:3]
    world.fleet.failing = {"gw-07", early[0]}  # no wave fails its gate: the rule trips
    with world.runner() as runner:
        summary = until_ended(runner, world.clock, start(runner))
    assert summary.status is ExecutionStatus.ABORTED
    rule = "abort rule: 2/2 finished target(s) failed = 100% >= 50% (after at least 2)"
    assert summary.message == f"aborted: {rule}"
    as_json, api, table, overview = _every_view(world)
    for view in (as_json, api):
        rollout = view["rollout"]
        assert (rollout["state"], rollout["wave"], rollout["reason"]) == ("aborted", "early", rule)
        waves = {w["name"]: w for w in rollout["waves"]}
        assert [w["state"] for w in rollout["waves"]] == ["passed", "aborted", "pending"]
        assert waves["early"]["decision"] == rule
    assert "    wave early        aborted  3 target(s) (size 30%): " in table
    assert "running" not in table
    assert "[rollout aborted early]" in overview


def test_waiting_targets_name_the_wave_they_wait_for_not_one_that_passed(world: World) -> None:
    world.job(WAVES + "soak: 1m\nmaxPerMinute: 6\n")
    with world.runner() as runner:
        start(runner)
        run_for(runner, world.clock, 5)
        soaking = job_view(runner.job_state("acme", "rollout"))
        run_for(runner, world.clock, 70)  # the canary soaked and passed; early is under way
        runner.engine.step(0)
    assert [w["state"] for w in soaking["rollout"]["waves"]] == ["soaking", "pending", "pending"]
    as_json, api, table, _ = _every_view(world)
    for view in (as_json, api):
        assert [w["state"] for w in view["rollout"]["waves"]] == ["passed", "running", "pending"]
        rest = [t for t in view["targets"] if t["wave"] == "rest"]
        assert rest and all(
            t["message"] == "waits for wave 'early' to pass (it is in wave 'rest')" for t in rest
        ), rest
    assert "canary" not in "".join(line for line in table.splitlines() if "waits" in line)
    # While the canary soaked, the later waves waited for it, and for its soak to end.
    held = {(t["wave"], t["message"]) for t in soaking["targets"] if t["wave"] != "canary"}
    until = "2027-01-10T12:01:00Z"
    assert held == {
        (wave, f"waits for wave 'canary' to pass: it soaks until {until} (it is in wave '{wave}')")
        for wave in ("early", "rest")
    }


WINDOW = 'window: {cron: "0 0 1 ? * *", duration: 1h, timezone: UTC}\n'  # 01:00-02:00 UTC


def test_a_stopped_rollout_says_stopped_not_waiting_for_the_window(world: World) -> None:
    world.job(WAVES + WINDOW)
    with world.runner() as runner:
        start(runner)
        run_for(runner, world.clock, 5)
        waiting = job_view(runner.job_state("acme", "rollout"))["rollout"]
        runner.stop_job("acme", "rollout", "stopped by the operator")
        run_for(runner, world.clock, 5)
    assert waiting["state"] == "waiting" and "wait for the window" in waiting["reason"]
    as_json, api, table, overview = _every_view(world)
    for view in (as_json, api):
        rollout = view["rollout"]
        assert rollout["state"] == "stopped"
        assert rollout["reason"].startswith("execution 1 was stopped (stopped by the operator)")
        assert [w["state"] for w in rollout["waves"]] == ["stopped", "pending", "pending"]
        assert {t["message"] for t in view["targets"]} == {"not started: execution 1 was stopped"}
    assert "window" not in table and "window" not in overview
    assert "  rollout    stopped: execution 1 was stopped" in table
    assert "[rollout stopped canary]" in overview


def test_a_suspended_rollout_says_suspended_before_anything_else(world: World) -> None:
    world.job(WAVES + WINDOW)
    with world.runner() as runner:
        start(runner)
        run_for(runner, world.clock, 5)
        manifest = world.root / "jobs.d" / "job.yaml"
        manifest.write_text(manifest.read_text() + "  suspend: true\n")
        runner.apply(runner.plan(runner.load()))
        run_for(runner, world.clock, 5)
    as_json, api, table, overview = _every_view(world)
    for view in (as_json, api):
        rollout = view["rollout"]
        assert rollout["state"] == "suspended"
        assert rollout["reason"].startswith("the job is suspended (spec.suspend: true)")
        assert [w["state"] for w in rollout["waves"]] == ["suspended", "pending", "pending"]
        assert {t["message"] for t in view["targets"]} == {
            "not started: the job is suspended (spec.suspend: true)"
        }
    assert "window" not in table and "stopped" not in table
    assert "  rollout    suspended: the job is suspended" in table
    assert "[rollout suspended canary]" in overview
