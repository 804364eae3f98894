"""`jobrunner watch --http` as a real process, under a stand-in for systemd's notify socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from jobrunner.simulator.broker import free_port

from ..engine.conftest import Scenario

pytestmark = pytest.mark.integration


def receive_until(sock: socket.socket, wanted: str, timeout: float = 20) -> list[str]:
    """The messages received until one equals `wanted`."""
    deadline = time.monotonic() + timeout
    got: list[str] = []
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if got[-1] == wanted:
            return got
    raise AssertionError(f"no {wanted!r} from the daemon; got {got}")


def test_watch_serves_http_and_talks_to_systemd(scenario: Scenario, tmp_path: Path) -> None:
    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    port = free_port()
    log = tmp_path / "watch.log"
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify),
        "WATCHDOG_USEC": "400000",
        "JOBRUNNER_HTTP": f"127.0.0.1:{port}",
    }
    command = [
        sys.executable, "-m", "jobrunner", "watch", "--jobs-dir", str(scenario.jobs_dir),
        "--state-dir", str(scenario.state_dir), "--broker", scenario.broker.url,
        "--scope", scenario.scope, "--client-id", f"watch-{scenario.scope}",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=output, env=env)
    try:
        receive_until(sock, "READY=1")
        assert receive_until(sock, "WATCHDOG=1")[-1] == "WATCHDOG=1"
        receive_until(sock, "WATCHDOG=1")  # fed again, while the loop turns
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert (health.status_code, health.text) == (200, "ok\n")
        assert f"dashboard: http://127.0.0.1:{port}/" in log.read_text()
        process.send_signal(signal.SIGTERM)
        receive_until(sock, "STOPPING=1")
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        sock.close()


def watch_once(scenario: Scenario, *extra: str) -> subprocess.CompletedProcess[str]:
    """`jobrunner watch ... EXTRA` run until it exits (it is expected to refuse to start)."""
    command = [
        sys.executable, "-m", "jobrunner", "watch", "--jobs-dir", str(scenario.jobs_dir),
        "--state-dir", str(scenario.state_dir), "--broker", scenario.broker.url,
        "--scope", scenario.scope, *extra,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def test_an_address_in_use_is_refused_with_a_message(scenario: Scenario) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        result = watch_once(scenario, "--http", f"127.0.0.1:{port}")
    finally:
        taken.close()
    assert result.returncode == 1, result.stderr
    assert f"the dashboard cannot listen on 127.0.0.1:{port}" in result.stderr


def test_a_malformed_http_address_is_refused_before_anything_starts(scenario: Scenario) -> None:
    result = watch_once(scenario, "--http", "localhost-8080")
    assert result.returncode == 2, result.stderr  # a bad value, as any on the command line
    assert "--http 'localhost-8080': write HOST:PORT or PORT" in result.stderr
    assert not (scenario.state_dir / "owner.lock").exists()  # nothing started
