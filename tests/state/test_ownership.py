"""Alone or shared: the owners model that opening the state gives, asked instead of its kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner.engine.service import handoff
from jobrunner.errors import JobError, StateError
from jobrunner.state.layout import StateDir
from jobrunner.state.lock import OwnerLock
from jobrunner.state.opening import open_state
from jobrunner.state.ownership import LeasedOwners, LocalOwners
from jobrunner.state.stores.leases import Leases


def test_a_state_directory_is_owned_whole_through_its_lock(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    owners = state.owners
    assert isinstance(owners, LocalOwners)
    assert not owners.daemon_runs() and owners.owner_of(("acme", "x")) is None
    assert owners.alive() is None  # no runners to count: status adds no "runners"
    assert owners.join("jobrunner-a", 15.0) is None
    assert owners.inboxes("start", ("acme", "x")) == [None]
    assert owners.inbox("whoever") == owners.inbox(None) == tmp_path / "requests"

    lock = owners.lock("watch", "jobrunner-a")
    assert isinstance(lock, OwnerLock)
    with lock:
        assert owners.daemon_runs()
        assert owners.owner_of(("acme", "x")) == "jobrunner-a"
        assert "owned by the watch daemon" in owners.describe()
        assert handoff.owning_daemon(state) is state
    assert not owners.daemon_runs()


def test_a_state_database_is_shared_through_leases_and_inboxes_per_runner(state_db: str) -> None:
    state = open_state(Path("unused"), state_db)
    owners = state.owners
    assert isinstance(owners, LeasedOwners)
    assert owners.alive() == [] and not owners.daemon_runs()
    assert "no runner alive" in owners.describe()
    runner = Leases(state_db, "runner-a", 15.0)
    try:
        runner.heartbeat()
        lease = runner.acquire("acme", "x")
        assert lease is not None
        assert owners.alive() == ["runner-a"] and owners.daemon_runs()
        assert owners.owner_of(("acme", "x")) == "runner-a"
        assert owners.inboxes("stop", ("acme", "x")) == ["runner-a"]
        assert owners.inboxes("start", ("acme", "nobodys")) == ["runner-a"]  # the least loaded
        assert owners.inbox("runner-a") == state.root / "requests" / "runner-a"
        assert owners.outbox("runner-a") == state.root / "outbox" / "runner-a"
        runner.goodbye()
        assert owners.inboxes("reconcile", None) == []
    finally:
        runner.close()
        state.storage.close()


def test_a_runner_folder_is_named_only_by_a_valid_client_id(state_db: str) -> None:
    state = open_state(Path("unused"), state_db)
    try:
        for bad in (None, "", "..", "a/b", "../outside"):
            with pytest.raises(StateError, match="is not a valid client id"):
                state.owners.inbox(bad)
        with pytest.raises(StateError, match="is not a valid client id"):
            state.owners.outbox("../outside")
    finally:
        state.storage.close()


def test_one_runner_joins_an_opened_state_once(state_db: str) -> None:
    state = open_state(Path("unused"), state_db)
    try:
        share = state.owners.join("runner-a", 15.0)
        assert share is not None and share.held == {}
        with pytest.raises(StateError, match="has joined"):
            state.owners.join("runner-b", 15.0)  # would stop fencing runner-a's writes
    finally:
        state.storage.close()


def test_a_request_with_no_runner_alive_to_take_it_says_so(state_db: str) -> None:
    state = open_state(Path("unused"), state_db)
    try:
        with pytest.raises(JobError, match=r"no runner of the state database .* is alive"):
            handoff.submit(state, "reconcile", timeout=1.0)
        with pytest.raises(JobError, match=r"no runner of the state database .* is alive"):
            handoff.submit(state, "start", "acme", "x", timeout=1.0)
        assert state.storage.children(state.root / "requests") == []  # nothing left behind
    finally:
        state.storage.close()
