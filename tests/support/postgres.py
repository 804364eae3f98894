"""A PostgreSQL server of its own, for tests and benchmarks: `initdb` and `pg_ctl` on a free
port, in a folder that is removed afterwards; never the machine's server, so that they run
the same on a fresh laptop.

The binaries are found on PATH, else in Debian's /usr/lib/postgresql/N/bin. PostgreSQL
refuses to run as root: as root, the server runs as the `postgres` user (`runuser`).
Without either, `NoPostgres` says why (the tests that need one are skipped with it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jobrunner.simulator.broker import free_port


class NoPostgres(Exception):  # noqa: N818 - a reason to skip, not an error
    """Why no server could be started here."""


def _bindir() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if debian:
        return debian[-1].parent
    raise NoPostgres("initdb is not installed (Debian: apt-get install postgresql)")


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        raise NoPostgres("running as root, and runuser is missing to start PostgreSQL as postgres")
    try:
        subprocess.run(["id", "postgres"], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        raise NoPostgres("running as root, and there is no postgres user to run it") from None
    return ["runuser", "-u", "postgres", "--"]


@contextmanager
def postgres_server(fsync: bool = False) -> Iterator[str]:
    """Start a server; yield its conninfo (`postgresql://jobrunner@127.0.0.1:PORT/postgres`).
    `fsync`: as a production server writes (a benchmark); off, tests run faster."""
    bindir = _bindir()
    prefix = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="jobrunner-postgres-"))
    folder.chmod(0o777)  # the server's user writes its data and socket here
    data = folder / "data"
    port = free_port()
    try:
        subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "jobrunner",
             "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
        if not fsync:
            options += " -c fsync=off"
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-t", "60",
             "-l", str(folder / "server.log"), "start"],
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip
    except subprocess.CalledProcessError as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise NoPostgres(f"PostgreSQL did not start: {error.stderr.decode()[-500:]}") from None
    try:
        yield f"postgresql://jobrunner@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)
