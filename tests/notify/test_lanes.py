"""Each notification posts in a lane of its own, and a lane keeps at most its maxBacklog.

Real HTTP receivers on local ports; one of them hangs (answers nothing until the test
releases it), as a receiver behind a dead proxy does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from jobrunner.cli.main import cli
from jobrunner.manifests import ManifestSet, load_manifests
from jobrunner.manifests.secrets import SecretResolver
from jobrunner.notify.delivery import Notifier
from jobrunner.state.layout import StateDir
from jobrunner.web.metrics import FleetCollector
from jobrunner.web.reader import FleetReader

RUNNER = "runner-lanes"
SAFETY = 60.0
"""Seconds a wait gives up after, so that a broken build fails instead of hanging; never
what a test measures."""


@dataclass
class Hook:
    """A receiver: records each POST it answered (200); `release` unset: it hangs."""

    url: str = ""
    release: threading.Event = field(default_factory=threading.Event)
    arrived: list[str] = field(default_factory=list)
    """The event ids of every POST, as it arrives (before any answer)."""
    received: list[str] = field(default_factory=list)
    """The event ids of the POSTs answered 200, in order."""
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        with self.changed:
            if not self.changed.wait_for(condition, timeout=SAFETY):
                raise AssertionError(f"never happened: {what}; received {self.received}")


def _serve(hook: Hook) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with hook.changed:
                hook.arrived.append(body["id"])
                hook.changed.notify_all()
            hook.release.wait()
            with hook.changed:
                hook.received.append(body["id"])
                hook.changed.notify_all()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass  # quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def hooks() -> Iterator[Callable[[bool], Hook]]:
    """Receivers: `hooks(True)` hangs until its `release` is set, `hooks(False)` answers."""
    servers: list[tuple[Hook, ThreadingHTTPServer]] = []

    def make(hanging: bool) -> Hook:
        hook = Hook()
        if not hanging:
            hook.release.set()
        servers.append((hook, _serve(hook)))
        return hook

    yield make
    for hook, server in servers:
        hook.release.set()
        server.shutdown()
        server.server_close()


@dataclass
class Source:
    """The daemon, as the notifier asks it: the manifests as read."""

    loaded: ManifestSet
    client_id: str = RUNNER

    def manifests(self) -> ManifestSet | None:
        return self.loaded


def declare(folder: Path, **hooks: tuple[Hook, str]) -> Source:
    """A Notification per name, to its hook; the string: more lines of its spec."""
    folder.mkdir(exist_ok=True)
    for name, (hook, extra) in hooks.items():
        (folder / f"{name}.yaml").write_text(
            "apiVersion: jobrunner/v1\nkind: Notification\n"
            f"metadata: {{name: {name}, scope: acme}}\nspec:\n  url: {hook.url}\n{extra}"
        )
    found = load_manifests([folder], "acme")
    assert not found.errors, [str(e) for e in found.errors]
    return Source(found)


def event(n: int) -> dict[str, Any]:
    return {
        "id": f"e{n}",
        "type": "jobrunner.execution.ended",
        "time": f"2026-01-01T00:00:{n:02d}.000Z",
        "data": {"n": n},
    }


@pytest.fixture
def notifier(tmp_path: Path) -> Iterator[Notifier]:
    made = Notifier(tmp_path / "state", SecretResolver.from_environment(), RUNNER)
    yield made
    made.stop()


def put(notifier: Notifier, to: str, *numbers: int) -> None:
    """Events as the engine's observer writes them, then the wake it gives."""
    for n in numbers:
        notifier.observer.outbox.put(f"acme/{to}", event(n))
    notifier.observer.wake()


def test_a_hanging_receiver_does_not_delay_a_healthy_one(
    tmp_path: Path, hooks: Callable[[bool], Hook], notifier: Notifier
) -> None:
    stuck, healthy = hooks(True), hooks(False)
    # A long timeout: were the lanes one, the healthy receiver would wait all of it.
    notifier.start(
        declare(tmp_path / "jobs.d", stuck=(stuck, "  timeout: 10m\n"), healthy=(healthy, ""))
    )
    put(notifier, "stuck", 1)
    stuck.wait_for(lambda: stuck.arrived == ["e1"], "the stuck receiver to be posted to")

    put(notifier, "healthy", 2, 3, 4)
    healthy.wait_for(lambda: len(healthy.received) == 3, "the healthy receiver's events")
    assert healthy.received == ["e2", "e3", "e4"]  # in order
    assert stuck.received == []  # it still hangs

    put(notifier, "stuck", 5)
    stuck.release.set()
    stuck.wait_for(lambda: len(stuck.received) == 2, "the stuck receiver's events, once back")
    assert stuck.received == ["e1", "e5"]  # in order, each once
    assert stuck.arrived == ["e1", "e5"]


def test_a_full_lane_drops_its_oldest_and_shows_its_backlog(
    tmp_path: Path,
    hooks: Callable[[bool], Hook],
    notifier: Notifier,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stuck, healthy = hooks(True), hooks(False)
    source = declare(
        tmp_path / "jobs.d",
        stuck=(stuck, "  timeout: 10m\n  maxBacklog: 3\n"),
        healthy=(healthy, ""),
    )
    notifier.attach(source)  # the lanes' threads, and this test's hand on the trimming
    put(notifier, "stuck", 1)
    notifier.dispatch()
    stuck.wait_for(lambda: stuck.arrived == ["e1"], "e1 to be in flight")
    put(notifier, "stuck", 2, 3, 4, 5, 6)
    put(notifier, "healthy", 7)
    notifier.dispatch()

    assert (
        "notification acme/stuck: 3 undelivered event(s) dropped, the oldest: its lane holds"
        " at most 3 (spec.maxBacklog)" in caplog.text
    )
    state = tmp_path / "state"
    shown = CliRunner().invoke(
        cli, ["status", "--notifications", "-o", "json", "--state-dir", str(state)]
    )
    assert shown.exit_code == 0, shown.output
    rows = {row["notification"]: row for row in json.loads(shown.output)}
    assert rows["acme/stuck"]["undelivered"] == 3  # e1 (in flight), e5, e6
    assert rows["acme/stuck"]["dropped"] == 3
    assert rows["acme/stuck"]["oldest"] == "2026-01-01T00:00:01Z"
    assert rows["acme/stuck"]["oldestAgeSeconds"] > 0
    table = CliRunner().invoke(cli, ["status", "--state-dir", str(state)])
    assert table.exit_code == 0, table.output
    line = next(x for x in table.output.splitlines() if x.startswith("acme/stuck"))
    assert line.split()[1:3] == ["3", "3"]  # undelivered, dropped
    assert "2026-01-01T00:00:01Z" in line

    metrics = CollectorRegistry()
    metrics.register(FleetCollector(FleetReader(StateDir(state)), Facts()))
    families = {
        f.name: {s.name: s for s in f.samples if s.labels.get("notification") == "acme/stuck"}
        for f in text_string_to_metric_families(generate_latest(metrics).decode())
    }
    assert families["jobrunner_outbox_events"]["jobrunner_outbox_events"].value == 3
    dropped = families["jobrunner_notifications_dropped"]
    assert dropped["jobrunner_notifications_dropped_total"].value == 3
    oldest = families["jobrunner_outbox_oldest_age_seconds"]
    assert oldest["jobrunner_outbox_oldest_age_seconds"].value > 0

    stuck.release.set()
    stuck.wait_for(lambda: len(stuck.received) == 3, "what was kept")
    assert stuck.received == ["e1", "e5", "e6"]  # the oldest waiting were dropped, in order
    healthy.wait_for(lambda: healthy.received == ["e7"], "the other lane, untouched")


@dataclass
class Facts:
    """The daemon's facts, for a collector without a daemon."""

    client_id: str = RUNNER

    def broker_connected(self) -> bool:
        return True

    def in_flight(self) -> int:
        return 0


def test_the_lane_of_a_notification_no_longer_declared_is_dropped(
    tmp_path: Path,
    hooks: Callable[[bool], Hook],
    notifier: Notifier,
    caplog: pytest.LogCaptureFixture,
) -> None:
    healthy = hooks(False)
    notifier.attach(declare(tmp_path / "jobs.d", healthy=(healthy, "")))
    put(notifier, "gone", 1, 2)  # written while it was declared
    notifier.dispatch()
    assert "notification acme/gone is no longer declared: 2 event(s) dropped" in caplog.text
    state = tmp_path / "state"
    shown = CliRunner().invoke(
        cli, ["status", "--notifications", "-o", "json", "--state-dir", str(state)]
    )
    assert shown.exit_code == 0, shown.output
    assert [r["notification"] for r in json.loads(shown.output)] == []
