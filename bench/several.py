"""Several runners on one state database: what PostgreSQL costs, how long a failover takes,
and whether two runners share the work.

    python -m bench.several [--targets 10000] [--rounds 3] [--jobs 100] [--json FILE]

Storage: `jobrunner reconcile --wait` of 3 sync steps over `--targets` devices of the
simulated fleet, through mosquitto, as the main benchmark runs it: on a state directory, then
on a PostgreSQL database (a server of its own, `fsync=on`); rounds interleaved, the ratio of
the medians is the database's cost. The same over the loopback engine (`bench.loopback`:
answered at once in process, about 10,000 round trips a second, far more than a broker and
a fleet allow) shows the most the database can cost, when nothing else takes any time.

Failover: two `watch` processes on one database, a mosquitto and a simulated fleet, one job
of 3 sync steps over 50 devices; the owner is killed (SIGKILL) mid-execution. Measured from
the kill to the first request a device receives from the new owner, against the lease.

Sharing: two `watch` processes started together on 100 one-step jobs: how many jobs each
owned and ran.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from bench import loopback
from bench.manifests import SYNC_STEPS, device_list, job, rollout
from bench.measure import JOBRUNNER, FleetProcess, run
from bench.report import Row, text_table
from jobrunner.simulator.broker import RunningBroker, start_broker
from jobrunner.simulator.config import FleetConfig
from jobrunner.simulator.faults import DelayFault, FaultPlan, Selector
from jobrunner.simulator.fleet import Fleet
from tests.support.postgres import postgres_server

SCOPE = "bench"
ONE_STEP = SYNC_STEPS.split("    - name: stop-bundle")[0]

STORAGE_LIMIT = 1.3
LEASE = 5.0
FAILOVER_SLACK = 5.0


def _database(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + f"/{name}"


def storage(server: str, targets: int, rounds: int) -> Row:
    """`reconcile --wait` over the fleet on files and on the database, interleaved."""
    files: list[float] = []
    database: list[float] = []
    broker = start_broker()
    fleet = FleetProcess(broker, targets, SCOPE)
    try:
        with tempfile.TemporaryDirectory(prefix="jobrunner-several-") as folder:
            root = Path(folder)
            jobs = rollout(root / "jobs.d", SCOPE, targets, SYNC_STEPS, "sync-3")
            for number in range(rounds):
                (root / f"state-{number}").mkdir()  # as `jobrunner init` makes it
                where = ["--state-dir", str(root / f"state-{number}")]
                files.append(_reconcile(broker, jobs, where, root, targets))
                state_db = _database(server, f"bench_fleet_{os.getpid()}_{number}")
                where = ["--state-db", state_db]
                database.append(_reconcile(broker, jobs, where, root, targets))
    finally:
        fleet.stop()
        broker.close()
    return _ratio("PostgreSQL state vs files: reconcile --wait, 3 sync steps", targets,
                  files, database, STORAGE_LIMIT)  # fmt: skip


def _reconcile(
    broker: RunningBroker, jobs: Path, where: list[str], cwd: Path, targets: int
) -> float:
    command = [
        *JOBRUNNER, "reconcile", "--wait", "--jobs-dir", str(jobs), *where,
        "--scope", SCOPE, "--broker", broker.url, "--client-id", "bench-runner",
    ]  # fmt: skip
    done = run(command, cwd=cwd)
    expected = f"TERMINATED ({targets} PROCESS_OK)"
    if done.returncode != 0 or expected not in done.stdout:
        raise RuntimeError(f"the rollout did not end {expected}:\n{done.stdout[-500:]}")
    return round(done.seconds, 2)


def storage_loopback(server: str, targets: int, rounds: int) -> Row:
    """The loopback run on files and on the database, interleaved: the most it can cost."""
    files: list[float] = []
    database: list[float] = []
    for number in range(rounds):
        files.append(loopback.run(targets, 200, None)["run_seconds"])
        state_db = _database(server, f"bench_loopback_{os.getpid()}_{number}")
        database.append(loopback.run(targets, 200, None, state_db=state_db)["run_seconds"])
    return _ratio("the same over the loopback engine (no broker: the most it costs)", targets,
                  files, database, None)  # fmt: skip


def _ratio(
    scenario: str, targets: int, files: list[float], database: list[float], limit: float | None
) -> Row:
    on_files, on_database = statistics.median(files), statistics.median(database)
    return Row(
        scenario=scenario,
        targets=targets,
        runner=on_database,
        floor=on_files,
        ops=3 * targets / on_database,
        target="" if limit is None else f"<= {limit:.2f}x",
        holds=None if limit is None else on_database / on_files <= limit,
        note=f"seconds on files {files}, on the database {database}",
    )


class _Watchers:
    def __init__(self, root: Path, broker: RunningBroker, state_db: str, scope: str) -> None:
        self.root, self.broker, self.state_db, self.scope = root, broker, state_db, scope
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, jobs: Path) -> subprocess.Popen[bytes]:
        command = [
            sys.executable, "-m", "jobrunner", "watch", "--jobs-dir", str(jobs),
            "--state-db", self.state_db, "--broker", self.broker.url, "--scope", self.scope,
            "--client-id", name, "--lease", str(LEASE), "--max-in-flight", "20",
        ]  # fmt: skip
        with (self.root / f"{name}.log").open("wb") as output:
            process = subprocess.Popen(command, stdout=output, stderr=output)
        self.processes[name] = process
        return process

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows of `sql`; none before a runner made the tables."""
        with psycopg.connect(self.state_db) as connection:
            try:
                return connection.execute(sql, params).fetchall()
            except psycopg.errors.UndefinedTable:
                return []

    def owner(self, job: str) -> str | None:
        rows = self.query(
            "SELECT owner FROM jobrunner_leases WHERE job = %s AND expires_at >= now()", job
        )
        return str(rows[0][0]) if rows else None

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _until(what: str, done: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout:g}s")
        time.sleep(0.02)


@contextmanager
def _world(server: str, name: str, devices: int) -> Iterator[tuple[Path, _Watchers, Fleet]]:
    with tempfile.TemporaryDirectory(prefix="jobrunner-several-") as folder:
        root = Path(folder)
        broker = start_broker()
        slow = FaultPlan(slow=(DelayFault(Selector("*", "*"), 0.2),))
        fleet = Fleet(
            FleetConfig(devices=devices, broker=broker.url, account=SCOPE, faults=slow, digits=6)
        ).start()
        watchers = _Watchers(root, broker, _database(server, name), "bench")
        try:
            yield root, watchers, fleet
        finally:
            watchers.stop()
            fleet.stop()
            broker.close()


def failover(server: str) -> Row:
    """Seconds from killing the owner to the new owner's first request, against the lease."""
    with _world(server, f"bench_failover_{os.getpid()}", 50) as (root, watchers, fleet):
        jobs = rollout(root / "jobs.d", "bench", 50, SYNC_STEPS, "sync-3")
        owner = watchers.start("runner-a", jobs)
        _until("runner-a owning", lambda: watchers.owner("sync-3") == "runner-a")
        watchers.start("runner-b", jobs)
        _until("runner-b alive", lambda: bool(watchers.query(
            "SELECT 1 FROM jobrunner_runners WHERE client_id = 'runner-b'")))  # fmt: skip
        _until("a third of the requests", lambda: fleet.count() >= 50)
        os.kill(owner.pid, signal.SIGKILL)
        killed = time.time()
        owner.wait()
        _until("a request of runner-b", lambda: any(r.at > killed + 0.5 for r in fleet.requests()))
        first = min(r.at for r in fleet.requests() if r.at > killed + 0.5)
        _until("the end of the execution", lambda: _ended(watchers) >= 1, timeout=180)
    seconds = first - killed
    return Row(
        scenario="failover: SIGKILL of the owner to the new owner's first request",
        targets=50,
        runner=round(seconds, 2),
        floor=LEASE,
        target=f"<= lease + {FAILOVER_SLACK:g} s",
        holds=seconds <= LEASE + FAILOVER_SLACK,
        note=f"lease {LEASE:g} s",
    )


def sharing(server: str, count: int) -> Row:
    """Two runners alive, then `count` jobs committed: how many each owned, and the time
    until every execution ended."""
    devices = 2 * count
    with _world(server, f"bench_sharing_{os.getpid()}", devices) as (root, watchers, _fleet):
        jobs = root / "jobs.d"
        jobs.mkdir()
        (jobs / "devices.yaml").write_text(device_list(SCOPE, devices, tags_every=count))
        watchers.start("runner-a", jobs)
        watchers.start("runner-b", jobs)
        _until(
            "both runners alive",
            lambda: (
                len(
                    watchers.query(
                        "SELECT 1 FROM jobrunner_runners WHERE seen_at >= now() - interval '3s'"
                    )
                )
                == 2
            ),
        )
        time.sleep(1.0)  # both reconciled the jobs directory without jobs
        started = time.monotonic()
        for number in range(count):  # each job on its own two devices (tag group-N)
            text = job(SCOPE, f"job-{number:03d}", ONE_STEP, f"{{tags: [group-{number}]}}", "1")
            (jobs / f"job-{number:03d}.yaml").write_text(text)
        _until("every job owned", lambda: len(watchers.query(
            "SELECT 1 FROM jobrunner_leases WHERE expires_at >= now()")) >= count)  # fmt: skip
        held = dict(watchers.query(
            "SELECT owner, count(*) FROM jobrunner_leases WHERE expires_at >= now()"
            " GROUP BY owner"))  # fmt: skip
        _until("every execution ended", lambda: _ended(watchers) >= count, timeout=300)
        seconds = time.monotonic() - started
    shares = sorted(int(n) for n in held.values())
    smaller = shares[0] if len(shares) == 2 else 0
    return Row(
        scenario=f"two runners on {count} jobs: the smaller share",
        targets=count,
        runner=round(seconds, 2),
        ops=smaller,
        target=f">= {count // 2 - 1} jobs each",
        holds=smaller >= count // 2 - 1,
        note=f"jobs per runner {held}; runner: seconds until every execution ended"
        f" (each job on 2 devices of {devices})",
    )


def _ended(watchers: _Watchers) -> int:
    rows = watchers.query(
        "SELECT count(*) FROM jobrunner_records WHERE key LIKE %s"
        " AND position('\"TERMINATED\"' in convert_from(head, 'UTF8')) > 0",
        "%/executions/%/summary.json",
    )
    return int(rows[0][0]) if rows else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.several", description=__doc__)
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--only", default="storage,loopback,failover,sharing", help="comma-separated parts"
    )
    args = parser.parse_args(argv)
    chosen = set(args.only.split(","))
    with postgres_server(fsync=True) as server:
        parts: dict[str, Callable[[], Row]] = {
            "storage": lambda: storage(server, args.targets, args.rounds),
            "loopback": lambda: storage_loopback(server, args.targets, args.rounds),
            "failover": lambda: failover(server),
            "sharing": lambda: sharing(server, args.jobs),
        }
        rows = [measure() for name, measure in parts.items() if name in chosen]
    print(text_table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps([row.as_dict() for row in rows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
