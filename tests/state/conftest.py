"""The state tests' fixtures: each storage a test of the state layer runs over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobrunner.state.stores.base import Storage
from jobrunner.state.stores.files import FileStorage
from jobrunner.state.stores.postgres import PostgresStorage


@pytest.fixture(params=["files", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A state directory, then a PostgreSQL database (skipped without a server)."""
    made: Storage
    if request.param == "files":
        made = FileStorage(tmp_path / "state")
    else:
        made = PostgresStorage(request.getfixturevalue("state_db"))
    yield made
    made.close()
