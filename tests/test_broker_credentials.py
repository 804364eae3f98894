"""One way to give broker credentials, honoured by the runner and the simulated fleet alike."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobrunner.simulator.broker import find_mosquitto, free_port, wait_for_port

pytestmark = pytest.mark.integration

JOB = """\
apiVersion: jobrunner/v1
kind: Job
metadata: {name: rollout, scope: acme}
spec:
  targets: {devices: [gw-0001, gw-0002]}
  steps:
    - {name: stop, definition: Bundle Stop, properties: {bundleId: 42}}
  run: "1"
"""


@pytest.fixture
def secured_broker(tmp_path: Path) -> Iterator[str]:
    """A mosquitto that lets in only user `runner` with password `s3cret`."""
    mosquitto = find_mosquitto()
    passwd = shutil.which("mosquitto_passwd")
    if mosquitto is None or passwd is None:
        pytest.skip("mosquitto and mosquitto_passwd are needed for a broker with passwords")
    users = tmp_path / "users"
    subprocess.run([passwd, "-b", "-c", str(users), "runner", "s3cret"], check=True)
    users.chmod(0o600)
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(  # `user`: as root, mosquitto would switch to a user who cannot read it
        f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous false\n"
        f"password_file {users}\npersistence false\n"
    )
    process = subprocess.Popen(
        [mosquitto, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert wait_for_port("127.0.0.1", port, timeout=10)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _jobrunner(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "jobrunner", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_simulate_and_reconcile_take_the_same_credentials(
    secured_broker: str, tmp_path: Path
) -> None:
    credentials = {"JOBRUNNER_MQTT_USERNAME": "runner", "JOBRUNNER_MQTT_PASSWORD": "s3cret"}
    fleet = _jobrunner(
        "simulate", "-n", "2", "--account", "acme", "--broker", secured_broker,
        "--run-for", "40s", env=credentials,
    )  # fmt: skip
    try:
        assert fleet.stdout is not None
        first = fleet.stdout.readline()
        assert "fleet up" in first, first
        jobs = tmp_path / "jobs.d"
        jobs.mkdir()
        (jobs / "job.yaml").write_text(JOB)
        (tmp_path / "state").mkdir()  # as `jobrunner init` makes it
        done = subprocess.run(
            [sys.executable, "-m", "jobrunner", "reconcile", "--wait", "--jobs-dir", str(jobs),
             "--state-dir", str(tmp_path / "state"), "--broker", secured_broker],
            env={**os.environ, **credentials}, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "TERMINATED (2 PROCESS_OK)" in done.stdout
    finally:
        fleet.terminate()
        fleet.communicate(timeout=15)


def test_without_credentials_or_with_them_in_the_url_the_message_says_how(
    secured_broker: str,
) -> None:
    refused = _jobrunner(
        "simulate", "-n", "1", "--broker", secured_broker, "--start-timeout", "5s", env={}
    )
    output, _ = refused.communicate(timeout=60)
    assert refused.returncode != 0
    assert "internal error" not in output and "Traceback" not in output
    assert "not authorised" in output.lower() or "not authorized" in output.lower(), output

    in_url = secured_broker.replace("mqtt://", "mqtt://runner:s3cret@")
    shown = _jobrunner("simulate", "-n", "1", "--broker", in_url, env={})
    output, _ = shown.communicate(timeout=30)
    assert shown.returncode != 0
    assert "carries credentials" in output and "JOBRUNNER_MQTT_USERNAME" in output
    assert "s3cret" not in output
