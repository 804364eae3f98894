"""`plan --live` without a broker: what each reply makes of a step, the rate limit on a fake
clock, and the seam for per-device values."""

from __future__ import annotations

import dataclasses
import socket
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobrunner.cli.live import text_lines
from jobrunner.cli.main import cli
from jobrunner.device import BrokerSettings
from jobrunner.device.payload import KuraPayload, Metric
from jobrunner.engine.planning.asking import TokenBucket, reader_settings
from jobrunner.engine.planning.drift import StepState
from jobrunner.engine.planning.live import Answer, JobLive, Read, choose, inspect, job_steps
from jobrunner.engine.planning.plan import JobPlan
from jobrunner.engine.service.runner import make_plan
from jobrunner.errors import JobError
from jobrunner.manifests.steps import ConfigurationPutStep, StepBase
from jobrunner.state.registry import DeviceRecord, DeviceStatus

PID = "org.example.Agent"


def ok(body: str) -> KuraPayload:
    return KuraPayload({"response.code": Metric.int32(200)}, body.encode())


def configuration(*props: tuple[str, str, str]) -> KuraPayload:
    items = "".join(
        f'<esf:property name="{n}" array="false" encrypted="false" type="{t}">'
        f"<esf:value>{v}</esf:value></esf:property>"
        for n, t, v in props
    )
    return ok(
        '<esf:configurations xmlns:esf="http://eurotech.com/esf/2.0">'
        f'<esf:configuration pid="{PID}"><esf:properties>{items}</esf:properties>'
        "</esf:configuration></esf:configurations>"
    )


BUNDLES = ok(
    "<bundles><bundle><name>org.a</name><version>1.0</version><id>7</id>"
    "<state>RESOLVED</state></bundle></bundles>"
)
PACKAGES = ok("<packages><package><name>org.a</name><version>1.0</version></package></packages>")


class FakeAsker:
    def __init__(self, replies: Mapping[tuple[str, ...], KuraPayload | None]) -> None:
        self.replies = replies
        self.asked: list[Read] = []

    def ask(self, account: str, encoding: str, reads: Sequence[Read]) -> dict[Read, Answer]:
        self.asked.extend(reads)
        answers = {}
        for read in reads:
            payload = self.replies.get(read.resources)
            answers[read] = Answer(payload, None if payload else "no reply in 1s")
        return answers


STEPS = f"""
- name: conf
  definition: Configuration Put
  properties:
    configurations:
      - pid: {PID}
        properties: {{rate: 2.5, on: true, mode: fast, list: [1, 2]}}
- {{name: start, definition: Bundle Start, properties: {{bundleId: 7}}}}
- {{name: stop, definition: Bundle Stop, properties: {{bundleId: 7}}}}
- {{name: nine, definition: Bundle Start, properties: {{bundleId: 9}}}}
- {{name: gone, definition: Package Uninstall, properties: {{name: org.a}}}}
- {{name: other, definition: Package Uninstall, properties: {{name: org.b}}}}
"""


def plan_of(tmp_path: Path, steps: str = STEPS) -> tuple[JobPlan, object]:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir(exist_ok=True)
    (tmp_path / "state").mkdir(exist_ok=True)
    body = textwrap.indent(textwrap.dedent(steps).strip(), "    ")
    (jobs / "j.yaml").write_text(
        "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: j, scope: acme}\n"
        f"spec:\n  targets: {{devices: [gw-1]}}\n  steps:\n{body}\n"
    )
    plan = make_plan(jobs, tmp_path / "state", "acme")
    (job,) = choose(plan, ["acme/j"])
    return job, plan


def run(tmp_path: Path, replies: Mapping[tuple[str, ...], KuraPayload | None]) -> JobLive:
    job, plan = plan_of(tmp_path)
    report = inspect(plan, [job], FakeAsker(replies), lambda s, c: None)  # type: ignore[arg-type]
    (live,) = report.jobs
    return live


def test_each_reply_decides_its_step(tmp_path: Path) -> None:
    device = configuration(
        ("rate", "Double", "2.5"), ("on", "Boolean", "TRUE"), ("mode", "String", "slow")
    )
    live = run(
        tmp_path,
        {("configurations", PID): device, ("bundles",): BUNDLES, ("packages",): PACKAGES},
    )
    (target,) = live.targets
    conf, start, stop, nine, gone, other = target.steps
    changes = {c.what.split()[-1]: c for c in conf.changes}
    assert changes["rate"].in_sync and changes["on"].in_sync  # 2.5 == 2.5, TRUE == true
    assert (changes["mode"].old, changes["mode"].new) == ("slow", "fast")
    assert (changes["list"].old, changes["list"].new) == (None, "[1, 2]")
    assert conf.state is StepState.WOULD_CHANGE
    assert (start.state, start.changes[0].old) == (StepState.WOULD_CHANGE, "RESOLVED")
    assert stop.state is StepState.IN_SYNC
    assert nine.state is StepState.WOULD_FAIL
    assert nine.changes[0].note == "would fail: no bundle 9 on the device"
    assert (gone.state, gone.changes[0].old) == (StepState.WOULD_CHANGE, "1.0")
    assert other.state is StepState.IN_SYNC  # not installed: nothing to uninstall


def test_an_error_reply_or_an_unreadable_body_is_unknown_with_why(tmp_path: Path) -> None:
    error = KuraPayload(
        {
            "response.code": Metric.int32(500),
            "response.exception.message": Metric.string("Configuration Error"),
        }
    )
    live = run(tmp_path, {("configurations", PID): error, ("bundles",): ok("<bundles")})
    conf, start, *_rest, gone, _ = live.targets[0].steps
    assert conf.state is StepState.UNKNOWN
    assert conf.reason == (
        f"CONF-V1 GET/configurations/{PID}: the device answered 500 (Configuration Error)"
    )
    assert start.reason == "DEPLOY-V2 GET/bundles: the reply cannot be read"
    assert gone.reason == "DEPLOY-V2 GET/packages: no reply in 1s"
    assert live.targets[0].connected is True and not live.targets[0].in_sync


def test_a_pid_the_device_lacks_is_said(tmp_path: Path) -> None:
    empty = ok('<esf:configurations xmlns:esf="http://eurotech.com/esf/2.0"/>')
    live = run(tmp_path, {("configurations", PID): empty})
    change = live.targets[0].steps[0].changes[0]
    assert change.note == "no such pid on the device: Kura would skip it"


def test_an_app_the_birth_did_not_advertise_is_not_asked(tmp_path: Path) -> None:
    job, plan = plan_of(tmp_path)
    asker = FakeAsker({("bundles",): BUNDLES, ("packages",): PACKAGES})
    record = DeviceRecord("gw-1", status=DeviceStatus.CONNECTED, application_ids=("DEPLOY-V2",))
    report = inspect(plan, [job], asker, lambda s, c: record)  # type: ignore[arg-type]
    assert {r.app_id for r in asker.asked} == {"DEPLOY-V2"}
    assert len(asker.asked) == 2  # bundles and packages once each, for four steps
    target = report.jobs[0].targets[0]
    assert target.missing == ("CONF-V1",) and target.steps[0].reason == "CONF-V1 not advertised"


def test_the_steps_of_a_target_come_from_the_seam_for_per_device_values(tmp_path: Path) -> None:
    one = f"[{{pid: {PID}, properties: {{mode: x}}}}]"
    step = f"- {{name: c, definition: Configuration Put, properties: {{configurations: {one}}}}}"
    job, plan = plan_of(tmp_path, step)
    seen: list[str] = []

    def per_device(job: JobPlan, client_id: str) -> Sequence[StepBase]:
        seen.append(client_id)
        (step,) = job_steps(job, client_id)
        assert isinstance(step, ConfigurationPutStep)
        resolved = step.properties.configurations[0].model_copy(
            update={"properties": {"mode": f"for-{client_id}"}}
        )
        properties = step.properties.model_copy(update={"configurations": [resolved]})
        return [step.model_copy(update={"properties": properties})]

    asker = FakeAsker({("configurations", PID): configuration(("mode", "String", "for-gw-1"))})
    report = inspect(plan, [job], asker, lambda s, c: None, steps_for=per_device)  # type: ignore[arg-type]
    assert seen == ["gw-1"] and report.jobs[0].targets[0].in_sync and report.exit_code == 0


def test_choose_names_the_jobs_there_are(tmp_path: Path) -> None:
    _, plan = plan_of(tmp_path)
    with pytest.raises(JobError, match="no job 'k' to read live; jobs: acme/j"):
        choose(plan, ["k"])  # type: ignore[arg-type]
    assert [j.name for j in choose(plan, [])] == ["j"]  # type: ignore[arg-type]


def test_the_bucket_spaces_requests_on_the_clock_it_is_given() -> None:
    now = [100.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    bucket = TokenBucket(5, clock=lambda: now[0], sleep=sleep)
    times = [bucket.take() for _ in range(11)]
    assert times[0] == 100.0 and times[-1] == pytest.approx(102.0)
    # In any second, at most 5 requests go.
    assert all(sum(1 for t in times if s <= t < s + 1) <= 5 for s in times)
    now[0] += 10  # idle: no burst is saved up beyond one request
    assert bucket.take() == pytest.approx(112.0) and bucket.take() == pytest.approx(112.2)
    with pytest.raises(ValueError, match="above 0"):
        TokenBucket(0)


def test_the_reader_has_its_own_client_id_and_a_clean_session() -> None:
    runner = BrokerSettings.resolve("mqtt://127.0.0.1:1883", client_id="jobrunner-host")
    shared = dataclasses.replace(runner, requester_id="jobrunner")
    reader = reader_settings(shared)
    assert reader.client_id.startswith("jobrunner-host-plan-") and reader.clean_session
    assert reader.requester == reader.client_id  # replies to it alone, not to the runners
    assert reader_settings(shared).client_id != reader.client_id


def test_verbose_text_lists_what_is_in_sync_too(tmp_path: Path) -> None:
    device = configuration(
        ("rate", "Double", "2.5"), ("on", "Boolean", "true"), ("mode", "String", "fast")
    )
    job, plan = plan_of(tmp_path)
    asker = FakeAsker({("configurations", PID): device, ("bundles",): BUNDLES})
    report = inspect(plan, [job], asker, lambda s, c: None)  # type: ignore[arg-type]
    short, full = text_lines(report), text_lines(report, verbose=True)
    assert (
        f"      {PID} rate: in sync (2.5)" in full
        and f"      {PID} rate: in sync (2.5)" not in short
    )
    assert f"      {PID} list: (absent) → [1, 2]" in short
    assert "  gw-1: 5 step(s) not in sync [connected]" in short  # of 6: 'stop' is in sync


def test_a_broker_that_cannot_be_reached_is_said_and_nothing_is_read(tmp_path: Path) -> None:
    plan_of(tmp_path)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once the socket closes
    result = CliRunner().invoke(
        cli,
        ["plan", "--live", "--jobs-dir", str(tmp_path / "jobs.d"), "--state-dir",
         str(tmp_path / "state"), "--broker", f"mqtt://127.0.0.1:{port}"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "plan --live: " in result.output and f"127.0.0.1:{port}" in result.output
