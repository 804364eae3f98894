"""A disk that refuses writes (full, read-only, over quota): the runner stops dispatching and
says why, instead of running on without recording; when it can write again, it resumes.

The refusal is real: the runner runs with a file-size limit (RLIMIT_FSIZE, set by util-linux's
prlimit), so the kernel refuses its writes past a few kilobytes (EFBIG), until the test
lifts the limit.
"""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from jobrunner.simulator.faults import DelayFault, FaultPlan, Selector

from .conftest import Scenario

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prlimit") is None, reason="util-linux prlimit is missing"),
]

LIMIT = 6000  # bytes: the execution's log outgrows it half way through


def _wait_for(
    condition: object, what: str, output: Path | Callable[[], str], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    text = output.read_text() if isinstance(output, Path) else output()
    raise AssertionError(f"timed out waiting for {what}:\n{text[-3000:]}")


def _requests_recorded(journal: Path) -> int:
    """Requests in the journal: the fewest of a few looks at its whole lines. A write that
    met the size limit leaves part of a batch there for an instant, until the runner cuts
    the batch off (a batch is appended whole or not at all): never a record."""
    counts = []
    for _ in range(5):
        data = journal.read_bytes()
        counts.append(data[: data.rfind(b"\n") + 1].count(b'"r":'))
        time.sleep(0.02)
    return min(counts)


def test_a_full_disk_pauses_dispatching_and_the_runner_resumes_after(
    scenario: Scenario,
) -> None:
    scenario.registry(20)
    fleet = scenario.fleet(20, FaultPlan(slow=(DelayFault(Selector("*", "command"), 0.05),)))
    scenario.job(
        "rollout",
        """
        - {name: check, definition: Command Execution, properties: {command: echo}}
        - {name: start, definition: Bundle Start, properties: {bundleId: 42}}
        """,
    )
    output = scenario.root / "runner.log"
    with output.open("wb") as log:
        # A soft limit: the test may raise it again (a hard one needs CAP_SYS_RESOURCE).
        limited = ["prlimit", f"--fsize={LIMIT}:unlimited", "--", *scenario.reconcile_command()]
        process = subprocess.Popen(limited, stdout=log, stderr=log)
    try:
        _wait_for(
            lambda: "cannot write the state directory" in output.read_text(),
            "the runner to notice",
            output,
        )
        assert "File too large" in output.read_text()
        journal = scenario.state_dir / "scopes" / scenario.scope / "jobs" / "rollout"
        recorded = _requests_recorded(journal / "targets.journal")
        time.sleep(1.0)  # running on, it would have sent dozens of requests by now
        # A request is recorded before it is sent: whatever is still on its way to the
        # devices, they never get more than was recorded, and nothing more is recorded.
        assert _requests_recorded(journal / "targets.journal") == recorded
        assert fleet.count() <= recorded, "it kept sending without recording"

        resource.prlimit(
            process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        )
        assert process.wait(timeout=60) == 0, output.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    text = output.read_text()
    assert "the state directory can be written again; dispatching resumes" in text
    assert set(scenario.statuses("rollout").values()) == {(1, "PROCESS_OK")}
    sent = Counter((r.device, r.operation) for r in fleet.requests())
    assert max(sent.values()) == 1, "nothing was sent twice"
    log_lines = scenario.log("rollout", 1).splitlines()
    assert log_lines[-1].endswith("execution: TERMINATED (20 PROCESS_OK)")
    assert all(" target " in line or " execution: " in line for line in log_lines), (
        "no line was torn by the refused writes"
    )


def test_sigterm_while_the_state_cannot_be_written_says_what_is_not_recorded(
    scenario: Scenario,
) -> None:
    scenario.registry(20)
    scenario.fleet(20, FaultPlan(slow=(DelayFault(Selector("*", "command"), 0.05),)))
    scenario.job(
        "rollout",
        """
        - {name: check, definition: Command Execution, properties: {command: echo}}
        - {name: start, definition: Bundle Start, properties: {bundleId: 42}}
        """,
    )
    watch = [
        "prlimit", f"--fsize={LIMIT}:unlimited", "--", sys.executable, "-m", "jobrunner",
        "watch", "--jobs-dir", str(scenario.jobs_dir), "--state-dir", str(scenario.state_dir),
        "--broker", scenario.broker.url, "--scope", scenario.scope,
        "--client-id", f"watch-{scenario.scope}", "--drain", "1",
    ]  # fmt: skip
    # Its log goes to a pipe: the file-size limit is for the state, not for what it says.
    process = subprocess.Popen(watch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    said: list[bytes] = []
    reader = threading.Thread(target=lambda: said.extend(iter(process.stdout.readline, b"")))  # type: ignore[union-attr]
    reader.start()
    try:
        _wait_for(
            lambda: b"cannot write the state directory" in b"".join(said),
            "the runner to notice",
            lambda: b"".join(said).decode(errors="replace"),
        )
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        process.stdout.close()  # type: ignore[union-attr]

    text = b"".join(said).decode(errors="replace")
    assert code == 75, text[-3000:]
    assert "stopped, but the state directory cannot be written (" in text
    assert "what happened since is not recorded (replies and transitions of" in text
    assert "every reply in flight was recorded" not in text
    assert "Traceback" not in text and "internal error" not in text
