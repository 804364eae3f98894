"""An MQTT broker on a free local port: Mosquitto when it is installed, else embedded amqtt.

Tests, the demo and the benchmarks start their own broker here instead of sharing one on the
standard port: a test then cannot see another run's messages, and a fault test may stop and
restart its broker.

Both kinds run as a child process of the caller. For amqtt (a pure-Python broker) that keeps
its CPU off the caller's interpreter lock, and makes stopping it certain: amqtt 0.11's own
shutdown can hang, a terminated process cannot.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from jobrunner.device.settings import parse_broker_url
from jobrunner.errors import ConfigError

BrokerKind = Literal["auto", "mosquitto", "embedded"]

_MOSQUITTO_PLACES = (
    "/usr/sbin/mosquitto",
    "/usr/local/sbin/mosquitto",
    "/opt/homebrew/sbin/mosquitto",
)


class BrokerError(RuntimeError):
    """The broker could not be started."""


def find_mosquitto() -> str | None:
    """The mosquitto binary: on PATH, or where Debian and Homebrew put it (sbin: often off PATH)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in _MOSQUITTO_PLACES if Path(p).is_file()), None)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return True
        time.sleep(0.02)
    return False


@dataclass
class RunningBroker:
    """A broker this process started; `stop()` (or leaving a `with` block) ends it. Kind
    `external`: one that runs elsewhere (`external_broker`), which is not ours to stop."""

    kind: Literal["mosquitto", "embedded", "external"]
    host: str
    port: int
    max_queued_messages: int | None = None
    _process: subprocess.Popen[bytes] | None = None
    _folder: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> RunningBroker:
        command = self._mosquitto_command() if self.kind == "mosquitto" else self._amqtt_command()
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not wait_for_port(self.host, self.port, timeout=15):
            failed = self._process.poll() is not None
            self.stop()
            reason = "exited" if failed else "did not listen in time"
            raise BrokerError(f"{self.kind} broker on {self.host}:{self.port} {reason}")
        return self

    def stop(self) -> None:
        """Stop the broker (its clients see the connection drop)."""
        if self.kind == "external":
            return  # not ours: leaving a `with` block leaves it running
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def restart(self, downtime: float = 0.0) -> None:
        """Stop, wait `downtime` seconds, and start again on the same port."""
        if self.kind == "external":
            raise BrokerError(f"the external broker {self.url} is not this process's to restart")
        self.stop()
        time.sleep(downtime)
        self.start()

    def close(self) -> None:
        self.stop()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def __enter__(self) -> RunningBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _amqtt_command(self) -> list[str]:
        if importlib.util.find_spec("amqtt") is None:
            raise BrokerError(
                "neither mosquitto nor the embedded broker is available;"
                " install mosquitto, or jobrunner[simulator]"
            )
        return [sys.executable, "-m", "jobrunner.simulator.embedded", self.host, str(self.port)]

    def _mosquitto_command(self) -> list[str]:
        binary = find_mosquitto()
        if binary is None:
            raise BrokerError("mosquitto is not installed")
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="jobrunner-mosquitto-")
        folder = Path(self._folder.name)
        config = folder / "mosquitto.conf"
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "persistence false",
            f"log_dest file {folder / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
        ]
        if self.max_queued_messages is not None:
            lines.append(f"max_queued_messages {self.max_queued_messages}")
        config.write_text("\n".join(lines) + "\n")
        return [binary, "-c", str(config)]


def external_broker(url: str) -> RunningBroker:
    """A broker that runs elsewhere (`mqtt://host:port`), once it accepts connections."""
    try:
        host, port, tls = parse_broker_url(url)
    except ConfigError as error:
        raise BrokerError(str(error)) from None
    if tls:
        raise BrokerError(f"{url!r}: the test broker is given as mqtt://host:port, without TLS")
    if not wait_for_port(host, port, timeout=10):
        raise BrokerError(f"the external broker {url} does not accept connections")
    return RunningBroker("external", host, port)


def start_broker(
    kind: BrokerKind = "auto",
    port: int | None = None,
    host: str = "127.0.0.1",
    max_queued_messages: int | None = None,
) -> RunningBroker:
    """Start a broker on `port` (a free one by default) and return once it accepts connections."""
    chosen: Literal["mosquitto", "embedded"] = (
        kind if kind != "auto" else ("mosquitto" if find_mosquitto() else "embedded")
    )
    for attempt in range(3):
        broker = RunningBroker(chosen, host, port or free_port(host), max_queued_messages)
        try:
            return broker.start()
        except BrokerError:
            broker.close()
            if port is not None or attempt == 2:
                raise
    raise AssertionError("unreachable")
