"""Secret references are resolved when a request is built for a device, and no secret value
ever shows: not in execution logs, status, plan output, recorded state, errors or Python logs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from jobrunner.device import KuraPayload, Metric, operation_for_step
from jobrunner.engine.link.operations import OperationAdapter
from jobrunner.engine.link.ports import Failed, FailureKind, Succeeded
from jobrunner.engine.planning.spec import dump_steps, spec_digest
from jobrunner.errors import SecretError
from jobrunner.manifests import Job
from jobrunner.manifests.secrets import SecretResolver
from jobrunner.manifests.steptemplates import load_steps
from jobrunner.simulator.config import DeviceProfile

from ..conftest import Scenario

ENV_SECRET = "cmd-Pa55-from-env"
FILE_SECRET = "repo-Pa55-from-file"
LITERAL = "lab-Pa55-literal"

STEPS = """
- name: check
  definition: Command Execution
  properties: {command: echo, arguments: [hi], password: {valueFrom: {env: JR_CMD_PASSWORD}}}
- name: fetch
  definition: Package Download / Install
  properties:
    uri: https://repo.example.com/tool.dp
    name: tool
    version: "1.0"
    install: false
    username: {valueFrom: {env: JR_REPO_USER}}
    password: {valueFrom: {file: acme/repo-password}}
"""


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "secrets"
    (folder / "acme").mkdir(parents=True)
    (folder / "acme" / "repo-password").write_text(FILE_SECRET + "\n")
    monkeypatch.setenv("JOBRUNNER_SECRETS_DIR", str(folder))
    monkeypatch.setenv("JR_CMD_PASSWORD", ENV_SECRET)
    monkeypatch.setenv("JR_REPO_USER", "deployer")
    return folder


def _cli(scenario: Scenario, *args: str) -> str:
    extra = ["--jobs-dir", str(scenario.jobs_dir)] if args[0] == "plan" else []
    code, output = scenario.invoke(*args, *extra)
    assert code in (0, 2), output  # plan: 2 when something would change
    return output


def _assert_hidden(text: str | bytes, where: str) -> None:
    for secret in (ENV_SECRET, FILE_SECRET, LITERAL):
        if isinstance(text, bytes):
            assert secret.encode() not in text, f"{secret!r} shows in {where}"
        else:
            assert secret not in text, f"{secret!r} shows in {where}"


def test_references_are_resolved_at_dispatch_and_no_output_shows_a_secret(
    scenario: Scenario, secrets: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    scenario.registry(2)
    fleet = scenario.fleet(2, profile=DeviceProfile(command_password=ENV_SECRET))
    scenario.job("rollout", STEPS)
    plan_output = _cli(scenario, "plan", "-v")

    scenario.reconcile()

    # The devices got the values: the simulated CMD-V1 refuses a wrong command password.
    assert set(scenario.statuses("rollout").values()) == {(1, "PROCESS_OK")}
    [download] = fleet.requests("gw-0001", "download")
    assert download.payload.string("dp.download.password") == FILE_SECRET
    assert download.payload.string("dp.download.username") == "deployer"
    # ... and nothing else did.
    _assert_hidden(plan_output, "plan")
    for args in (("status",), ("status", "rollout"), ("status", "rollout", "-o", "json")):
        _assert_hidden(_cli(scenario, *args), " ".join(args))
    log_output = _cli(scenario, "logs", "rollout")
    _assert_hidden(log_output, "logs")
    assert "command.password=***" in log_output and "dp.download.password=***" in log_output
    for file in scenario.state_dir.rglob("*"):
        if file.is_file():
            _assert_hidden(file.read_bytes(), str(file))
    record = scenario.state_dir / "scopes" / scenario.scope / "jobs" / "rollout" / "job.json"
    assert '"file": "acme/repo-password"' in record.read_text()  # the reference is recorded
    _assert_hidden("\n".join(r.getMessage() for r in caplog.records), "the Python log")


def test_a_missing_secret_fails_the_step_naming_the_reference_and_sends_nothing(
    scenario: Scenario, secrets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JR_CMD_PASSWORD")
    scenario.registry(2)
    fleet = scenario.fleet(2, profile=DeviceProfile(command_password=ENV_SECRET))
    scenario.job("rollout", STEPS)

    scenario.reconcile()

    assert set(scenario.statuses("rollout").values()) == {(0, "PROCESS_FAILED")}
    message = scenario.messages("rollout")["gw-0001"] or ""
    assert message.startswith("not sent: secret valueFrom env JR_CMD_PASSWORD: ")
    assert "the environment variable JR_CMD_PASSWORD is not set" in message
    assert fleet.contacted("command") == set()
    log = scenario.log("rollout", 1)
    assert "sent CMD-V1" not in log, "the log says sent only of what was published"
    assert "'check': not sent: secret valueFrom env JR_CMD_PASSWORD" in log


def test_a_rotated_secret_is_used_from_the_next_dispatch(scenario: Scenario, secrets: Path) -> None:
    (secrets / "acme" / "repo-password").write_text("rotated-value")
    scenario.registry(1)
    fleet = scenario.fleet(1, profile=DeviceProfile(command_password=ENV_SECRET))
    scenario.job("rollout", STEPS)

    scenario.reconcile()

    [download] = fleet.requests("gw-0001", "download")
    assert download.payload.string("dp.download.password") == "rotated-value"


# --- the adapter, without a broker ------------------------------------------------------------


def _job(password: str) -> Job:
    return Job.model_validate(
        {
            "apiVersion": "jobrunner/v1",
            "kind": "Job",
            "metadata": {"name": "j"},
            "spec": {
                "targets": {"all": True},
                "steps": [
                    {
                        "name": "check",
                        "definition": "Command Execution",
                        "properties": {"command": "ls", "password": password},
                    }
                ],
            },
        }
    )


def _adapter(environ: dict[str, str], password: object = None) -> OperationAdapter:
    job = _job(password or {"valueFrom": {"env": "JR_CMD_PASSWORD"}})  # type: ignore[arg-type]
    step = job.spec.steps[0]
    return OperationAdapter(operation_for_step(step), SecretResolver(Path("/none"), environ))


def test_the_frozen_steps_hold_the_reference_and_their_digest_ignores_the_value() -> None:
    job = _job({"valueFrom": {"env": "JR_CMD_PASSWORD"}})  # type: ignore[arg-type]

    frozen = dump_steps(job)

    assert frozen[0]["properties"]["password"] == {"valueFrom": {"env": "JR_CMD_PASSWORD"}}
    assert load_steps(frozen) == list(job.spec.steps)
    assert spec_digest(job) == spec_digest(_job({"valueFrom": {"env": "JR_CMD_PASSWORD"}}))  # type: ignore[arg-type]
    assert spec_digest(job) != spec_digest(_job({"valueFrom": {"env": "OTHER"}}))  # type: ignore[arg-type]


def test_the_request_carries_the_value_and_its_description_a_mask() -> None:
    adapter = _adapter({"JR_CMD_PASSWORD": ENV_SECRET})

    request = adapter.request(None)

    assert request.metrics["command.password"] == Metric.string(ENV_SECRET)
    assert ENV_SECRET not in adapter.describe(None)
    assert "command.password=***" in adapter.describe(None)
    assert ENV_SECRET not in repr(request)


def test_a_secret_echoed_by_the_device_is_masked_in_the_outcome() -> None:
    adapter = _adapter({"JR_CMD_PASSWORD": ENV_SECRET})
    adapter.request(None)
    echo = KuraPayload.of(
        {
            "response.code": Metric.int32(400),
            "response.exception.message": Metric.string(f"bad password {ENV_SECRET}!"),
        }
    )

    outcome = adapter.on_reply(echo, None)

    assert outcome == Failed(
        "device replied 400: bad password ***! (the command is empty, or the command password"
        " is wrong)",
        FailureKind.DEVICE_ERROR,
        400,
    )


def test_a_literal_secret_echoed_by_the_device_is_masked_too() -> None:
    adapter = _adapter({}, LITERAL)
    stdout = KuraPayload.of(
        {
            "response.code": Metric.int32(200),
            "command.exit.code": Metric.int32(0),
            "command.stdout": Metric.string(f"using {LITERAL}"),
        }
    )
    expected = Succeeded("command exited with code 0; stdout: using ***")
    assert adapter.on_reply(stdout, None) == expected


def test_a_secret_missing_at_send_time_is_not_sent_and_says_which_reference() -> None:
    environ = {"JR_CMD_PASSWORD": ENV_SECRET}
    adapter = _adapter(environ)
    assert adapter.unsupported_reason(["CMD-V1"]) is None
    del environ["JR_CMD_PASSWORD"]  # gone between the check and the send

    with pytest.raises(SecretError, match="secret valueFrom env JR_CMD_PASSWORD: "):
        adapter.request(None)
    assert ENV_SECRET not in adapter.redact(f"echoed {ENV_SECRET}")


def test_a_short_secret_is_masked_only_where_it_stands_whole_and_said_to_be_short(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = _adapter({"JR_CMD_PASSWORD": "ab"})
    with caplog.at_level(logging.WARNING):
        adapter.request(None)  # resolved, and so hidden from now on

    said = adapter.redact("fetched https://lab.example/ab/x with ab")
    assert said == "fetched https://lab.example/***/x with ***"  # not "l***.example"
    assert "is 2 character(s): it is masked only where it stands whole" in caplog.text
    assert "ab" not in caplog.text.replace("character(s)", "")


def test_a_secret_of_six_characters_or_more_is_masked_wherever_it_stands() -> None:
    adapter = _adapter({"JR_CMD_PASSWORD": "s3cret"})
    adapter.request(None)
    assert adapter.redact("x-s3cret-y xs3crety") == "x-***-y x***y"


def test_each_device_reads_its_own_secret_file_and_only_the_reference_is_frozen(
    scenario: Scenario, secrets: Path
) -> None:
    for number in (1, 2):
        (secrets / "acme" / f"gw-000{number}.pw").write_text(f"{FILE_SECRET}-{number}\n")
    scenario.registry(2)
    fleet = scenario.fleet(2, profile=DeviceProfile(command_password=ENV_SECRET))
    scenario.job(
        "own-secret",
        """
        - name: fetch
          definition: Package Download / Install
          properties:
            uri: https://repo.example.com/tool.dp
            name: tool
            version: "1.0"
            install: false
            password: {valueFrom: {file: "acme/${device.clientId}.pw"}}
        """,
    )

    scenario.reconcile()

    assert set(scenario.statuses("own-secret").values()) == {(0, "PROCESS_OK")}
    for number in (1, 2):
        [download] = fleet.requests(f"gw-000{number}", "download")
        assert download.payload.string("dp.download.password") == f"{FILE_SECRET}-{number}"
    _assert_hidden(_cli(scenario, "logs", "own-secret"), "logs")
    for file in scenario.state_dir.rglob("*"):
        if file.is_file():
            _assert_hidden(file.read_bytes(), str(file))
    record = scenario.state_dir / "scopes" / scenario.scope / "jobs" / "own-secret" / "job.json"
    assert '"file": "acme/${device.clientId}.pw"' in record.read_text()
