"""Opening the recorded state where the configuration says: a directory, or a database."""

from __future__ import annotations

import re
from pathlib import Path

from jobrunner.errors import ConfigError
from jobrunner.state.layout import StateDir


def open_state(state_dir: Path, state_db: str | None = None) -> StateDir:
    """The state in PostgreSQL when `state_db` is given (`--state-db`), else in `state_dir`.

    StateError when the database cannot be reached or was written by a newer jobrunner;
    ConfigError when psycopg, which the database needs, is not installed."""
    if not state_db:
        return StateDir(state_dir)
    if not state_db.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"--state-db {state_db!r} is not a PostgreSQL URL;"
            " write postgresql://USER@HOST:PORT/DATABASE"
        )
    try:
        from jobrunner.state.pgstorage import ROOT, PostgresStorage  # noqa: PLC0415 - optional
    except ImportError:
        raise ConfigError("--state-db needs psycopg: pip install 'jobrunner[postgresql]'") from None
    return StateDir(ROOT, PostgresStorage(state_db))


def redacted(conninfo: str) -> str:
    """The conninfo without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", conninfo)
