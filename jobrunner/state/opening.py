"""Opening the recorded state where the configuration says: a directory, or a database.

The state opened says, through its owners model (`StateDir.owners`), whether it is owned
whole (a directory) or shared by runners (a database); a command opens it once, one
connection for everything it does, and passes it down.
"""

from __future__ import annotations

from pathlib import Path

from jobrunner.errors import BadValueError, ConfigError
from jobrunner.state.layout import StateDir


def open_state(state_dir: Path, state_db: str | None = None, *, existing: bool = False) -> StateDir:
    """The state in PostgreSQL when `state_db` is given (`--state-db`), else in `state_dir`.

    `existing`: a state directory must exist already: no command but `jobrunner init`
    takes a mistyped --state-dir for a new state (every job would run again). StateError when the
    database cannot be reached or was written by a newer jobrunner; ConfigError when
    psycopg, which the database needs, is not installed, or `existing` is not met."""
    if not state_db:
        if existing:
            require_state_dir(state_dir)
        return StateDir(state_dir)
    if not state_db.startswith(("postgresql://", "postgres://")):
        raise BadValueError(
            f"--state-db {state_db!r} is not a PostgreSQL URL;"
            " write postgresql://USER@HOST:PORT/DATABASE"
        )
    try:
        from jobrunner.state.stores.postgres import ROOT, PostgresStorage  # noqa: PLC0415
    except ImportError:
        raise ConfigError("--state-db needs psycopg: pip install 'jobrunner[postgresql]'") from None
    return StateDir(ROOT, PostgresStorage(state_db))


def require_state_dir(path: Path) -> Path:
    """`path` if it is a state directory; ConfigError otherwise."""
    if path.is_dir():
        return path
    what = "is not a directory" if path.exists() else "does not exist"
    raise ConfigError(
        f"the state directory {path} {what}: nothing was recorded there, and no command takes"
        " that for a state where nothing ran yet; is --state-dir (JOBRUNNER_STATE_DIR,"
        f" stateDir) right? To begin a new state there: jobrunner init --state-dir {path}"
    )
