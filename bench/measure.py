"""Measuring child processes: wall time, peak memory (RSS) and CPU time; folder sizes; the
broker and the fleet every device scenario shares."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from jobrunner.simulator.broker import RunningBroker, find_mosquitto, start_broker

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
JOBRUNNER = [PYTHON, "-m", "jobrunner"]


JOBRUNNER_PATH: list[Path] = []
"""Folders searched for `jobrunner` before the installed one (`--jobrunner-path`): the same
benchmark over another revision, e.g. `git worktree add /tmp/before HEAD~3`."""


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the measured processes. Bytecode caches are allowed (an installed
    jobrunner has them; without them every start compiles the package again)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBRUNNER_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in [*JOBRUNNER_PATH, ROOT])
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Finished:
    """A child process that ran to its end."""

    command: Sequence[str]
    seconds: float
    """Wall time from start to exit."""
    peak_rss: int
    """Peak resident set size of the process, bytes (its own, not its children's)."""
    cpu: float
    """User + system CPU seconds."""
    returncode: int
    stdout: str
    stderr: str

    def check(self, *allowed: int) -> Finished:
        if self.returncode not in (allowed or (0,)):
            raise RuntimeError(
                f"{' '.join(self.command)} exited {self.returncode}:\n{self.stderr[-2000:]}"
            )
        return self


def run(
    command: Sequence[str],
    timeout: float = 600.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Finished:
    """Run `command` to its end; wall time, peak RSS and CPU time from its own rusage."""
    with (
        tempfile.TemporaryFile(prefix="jobrunner-bench-") as out,
        tempfile.TemporaryFile(prefix="jobrunner-bench-") as err,
    ):
        started = time.monotonic()
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=child_environment(env),
            cwd=cwd,
        )
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.005)
        seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Finished(
            command,
            seconds,
            usage.ru_maxrss * 1024,
            usage.ru_utime + usage.ru_stime,
            process.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


@dataclass(frozen=True)
class FolderSize:
    bytes: int
    files: int
    largest: list[tuple[str, int]]


def folder_size(folder: Path) -> FolderSize:
    sizes = [(p, p.stat().st_size) for p in folder.rglob("*") if p.is_file()]
    largest = sorted(sizes, key=lambda item: -item[1])[:5]
    return FolderSize(
        sum(size for _, size in sizes),
        len(sizes),
        [(str(p.relative_to(folder)), size) for p, size in largest],
    )


class FleetProcess:
    """`python -m bench.fleet` in a process of its own, until `stop()`."""

    def __init__(self, broker: RunningBroker, devices: int, account: str) -> None:
        self.devices = devices
        self.process = subprocess.Popen(
            [PYTHON, "-m", "bench.fleet", "--broker", broker.url, "--devices", str(devices),
             "--account", account],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=child_environment(),
            text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError(f"the simulated fleet did not come up ({line.strip()!r})")
        self.started = line.strip()

    def cpu(self) -> float:
        """CPU seconds the fleet has used so far."""
        return _cpu_of(self.process.pid)

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of a running process, from /proc."""
    return _cpu_of(pid)


@contextmanager
def broker() -> Iterator[RunningBroker]:
    """Stock mosquitto on a free port (the benchmark needs mosquitto: see PERFORMANCE-NOTES)."""
    with start_broker("mosquitto") as running:
        yield running


def machine() -> str:
    """One line about the machine: CPU model and count, memory, OS, Python."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total = int(meminfo.read_text().split()[1])
        memory = f", {total / 1024 / 1024:.0f} GB RAM"
    binary = find_mosquitto()
    mosquitto = (
        subprocess.run(
            [binary, "-h"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[:1]
        if binary
        else []
    )
    return (
        f"{model}, {os.cpu_count()} CPUs{memory}; {os.uname().sysname} {os.uname().release};"
        f" Python {sys.version.split()[0]}; {mosquitto[0] if mosquitto else 'mosquitto ?'}"
    )
