"""One suite over every Storage: the state directory and the state database behave alike.

What the state layer relies on (journals, logs, records, listings) is asserted here once, for
both implementations; what only PostgreSQL has (fencing, a database that goes away) follows.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from jobrunner.errors import LeaseLostError, StateError
from jobrunner.state.jobstore import JobState
from jobrunner.state.journal import Journal
from jobrunner.state.layout import StateDir
from jobrunner.state.records import ExecutionStatus, FrozenJob, JobRecord, Trigger, TriggerKind
from jobrunner.state.stores.base import Storage
from jobrunner.state.stores.leases import Leases
from jobrunner.state.stores.postgres import PostgresStorage
from jobrunner.state.targets import RollbackState, Snapshot, TargetState, TargetStatus


def at(storage: Storage, key: str) -> Path:
    return storage.root / key


def test_a_missing_record(storage: Storage) -> None:
    path = at(storage, "scopes/acme/policy.json")
    with pytest.raises(FileNotFoundError):
        storage.read(path)
    assert not storage.exists(path)
    assert storage.size(path) is None and storage.stamp(path) is None
    assert storage.read_from(path, 0) == b""
    assert storage.children(at(storage, "scopes")) == []
    storage.remove(path)  # nothing to remove is no error


def test_replace_is_whole_and_changes_the_stamp(storage: Storage) -> None:
    path = at(storage, "scopes/acme/jobs/x/job.json")
    storage.replace(path, b"old")
    first = storage.stamp(path)
    storage.replace(path, b"new!")
    assert storage.read(path) == b"new!" and storage.size(path) == 4
    assert storage.stamp(path) != first


def test_append_writes_the_header_once_and_keeps_the_order(storage: Storage) -> None:
    path = at(storage, "scopes/acme/jobs/x/targets.journal")
    storage.append(path, b"a\n", header=b"H\n")
    storage.append(path, b"b\nc\n", header=b"H\n")
    assert storage.read(path) == b"H\na\nb\nc\n"
    assert storage.read_from(path, 4) == b"b\nc\n"
    assert storage.read_from(path, 5) == b"\nc\n"  # from inside an appended batch


def test_a_reader_follows_appends_until_the_record_is_replaced(storage: Storage) -> None:
    path = at(storage, "scopes/acme/devices.journal")
    storage.append(path, b"one\n", header=b"H\n")
    data, stamp = storage.read_stamped(path)
    storage.append(path, b"two\n")
    assert storage.read_after(path, stamp, len(data)) == b"two\n"
    storage.replace(path, b"H\nsnapshot\n")  # compacted: read it whole again
    assert storage.read_after(path, stamp, len(data)) is None
    data, stamp = storage.read_stamped(path)
    assert data == b"H\nsnapshot\n"
    storage.append(path, b"three\n")
    assert storage.read(path) == b"H\nsnapshot\nthree\n"
    assert storage.read_after(path, stamp, len(data)) == b"three\n"
    storage.remove(path)
    assert storage.read_after(path, stamp, len(data)) is None


def test_a_record_read_in_pieces_is_the_whole_record(storage: Storage) -> None:
    path = at(storage, "scopes/acme/devices.journal")
    storage.append(path, b"one\ntwo\n", header=b"H\n")
    pieces, stamp = storage.read_chunks(path, 3)
    assert b"".join(pieces) == b"H\none\ntwo\n"
    assert stamp == storage.read_stamped(path)[1]
    with pytest.raises(FileNotFoundError):
        storage.read_chunks(at(storage, "scopes/acme/nothing.journal"), 3)


def test_children_are_the_names_directly_under_a_folder(storage: Storage) -> None:
    for key in (
        "scopes/acme/jobs/b/job.json",
        "scopes/acme/jobs/a/job.json",
        "scopes/acme/jobs/a/executions/000001/summary.json",
        "scopes/acme/devices.journal",
        "scopes/acme2/jobs/c/job.json",
    ):
        storage.replace(at(storage, key), b"{}")
    assert storage.children(at(storage, "scopes")) == ["acme", "acme2"]
    assert storage.children(at(storage, "scopes/acme")) == ["devices.journal", "jobs"]
    assert storage.children(at(storage, "scopes/acme/jobs")) == ["a", "b"]
    assert storage.children(at(storage, "scopes/acme/jobs/a/executions")) == ["000001"]
    state = StateDir(storage.root, storage)
    assert list(state.jobs()) == [("acme", "a"), ("acme", "b"), ("acme2", "c")]
    assert list(state.jobs(besides={("acme", "a")})) == [("acme", "b"), ("acme2", "c")]
    storage.remove(at(storage, "scopes/acme/jobs/b/job.json"))  # an empty folder may stay
    assert list(state.jobs()) == [("acme", "a"), ("acme2", "c")]
    assert {("acme", "a"), ("acme2", "c")} <= set(state.job_folders())  # and ("acme", "b")


def test_remove_tree_removes_every_record_under_a_folder_and_nothing_beside(
    storage: Storage,
) -> None:
    executions = at(storage, "scopes/acme/jobs/x/executions")
    for key in ("000001/summary.json", "000001/log.txt", "000002/summary.json"):
        storage.replace(executions / key, b"{}")
    storage.append(executions / "000001/log.txt", b"line\n")  # appended since: gone too
    storage.replace(at(storage, "scopes/acme/jobs/x/executions/0000010/summary.json"), b"{}")

    storage.remove_tree(executions / "000001")
    storage.remove_tree(executions / "000009")  # none: nothing happens

    assert storage.children(executions) == ["0000010", "000002"]
    assert not storage.exists(executions / "000001/log.txt")
    assert storage.read_from(executions / "000001/log.txt", 0) == b""
    assert storage.read(executions / "000002/summary.json") == b"{}"
    with storage.batch():  # inside one engine turn, with other writes
        storage.remove_tree(executions / "000002")
        storage.replace(at(storage, "scopes/acme/jobs/x/job.json"), b"{}")
    assert storage.children(executions) == ["0000010"]


def test_writes_in_a_batch_are_all_there_after_it(storage: Storage) -> None:
    log = at(storage, "scopes/acme/jobs/x/executions/000001/log.txt")
    record = at(storage, "scopes/acme/jobs/x/job.json")
    with storage.batch():
        storage.append(log, b"line 1\n")
        storage.replace(record, b"{}")
        storage.append(log, b"line 2\n")
    assert storage.read(log) == b"line 1\nline 2\n" and storage.read(record) == b"{}"


def test_a_journal_over_the_storage(storage: Storage) -> None:
    path = at(storage, "scopes/acme/jobs/x/targets.journal")
    journal = Journal(storage, path, "jobrunner.targets", 1)
    journal.append({"t": "gw-1"})
    journal.append({"t": "gw-é"})
    journal.flush(durable=True)
    reader = Journal(storage, path, "jobrunner.targets", 1)
    assert list(reader.read()) == [{"t": "gw-1"}, {"t": "gw-é"}]
    journal.append({"t": "gw-3"})
    journal.flush()
    appended = reader.read_appended()
    assert appended is not None and list(appended) == [{"t": "gw-3"}]
    journal.compact([{"t": "gw-3"}])
    assert reader.read_appended() is None
    assert list(reader.read()) == [{"t": "gw-3"}]
    storage.replace(path, b'{"format": "jobrunner.targets", "version": 9}\n')
    with pytest.raises(StateError, match="newer jobrunner"):
        list(reader.read())


def test_a_job_is_recorded_and_loaded_again(storage: Storage) -> None:
    state = StateDir(storage.root, storage)
    job = JobState.create(state, JobRecord(scope="acme", name="upgrade"))
    job.add_targets(["gw-1", "gw-2"], 1.0)
    summary = job.begin_execution(Trigger(kind=TriggerKind.MANUAL), ["gw-1", "gw-2"], "abc")
    job.targets.put(TargetState("gw-1", status=TargetStatus.PROCESS_OK, execution=summary.id))
    job.log(summary.id).write("target gw-1", "done")
    job.flush()
    job.end_execution(summary, ExecutionStatus.TERMINATED)
    job.close()
    assert list(state.jobs()) == [("acme", "upgrade")]
    again = JobState.load(state, "acme", "upgrade")
    assert again.targets.get("gw-1").status is TargetStatus.PROCESS_OK
    assert again.executions[1].status is ExecutionStatus.TERMINATED
    assert again.executions[1].counts == {"PROCESS_OK": 1, "PROCESS_AWAITING": 1}
    assert b"target gw-1: done" in storage.read(again.paths.log(1))


def test_a_loaded_job_holds_each_client_id_once(storage: Storage) -> None:
    """The record's frozen targets, each summary's targets and the targets' own values name
    the same devices: a loaded job holds one text per client id for all three (a daemon
    holding 100,000 targets held each id three times)."""
    state = StateDir(storage.root, storage)
    job = JobState.create(state, JobRecord(scope="acme", name="held"))
    ids = [f"gw-{n:04d}" for n in range(3)]
    job.freeze(FrozenJob(at=datetime(2026, 12, 1, tzinfo=UTC), targets=ids, steps=[], digest="d"))
    job.add_targets(ids, 1.0)
    job.begin_execution(Trigger(kind=TriggerKind.MANUAL), ids, None)
    job.close()
    again = JobState.load(state, "acme", "held")
    assert again.record.frozen is not None and again.record.frozen.targets == ids
    listed = again.executions[1].targets
    for frozen, summary in zip(again.record.frozen.targets, listed, strict=True):
        assert frozen is summary is again.targets.get(frozen).client_id


def test_a_targets_stage_and_snapshot_round_trip(storage: Storage) -> None:
    """DESIGN §11: a target between two requests of its step, with its snapshot and where
    its rollback stands, reads back the same: appended, followed by a reader, compacted."""
    state = StateDir(storage.root, storage)
    job = JobState.create(state, JobRecord(scope="acme", name="safe"))
    job.add_targets(["gw-1", "gw-2"], 1.0)
    waiting = TargetState("gw-1", 0, TargetStatus.PROCESS_AWAITING, execution=1, stage="verify:1",
                          snapshot=Snapshot(1_700_000_000_123, 0))  # fmt: skip
    rolling = TargetState("gw-2", 1, TargetStatus.PROCESS_FAILED, execution=1,
                          snapshot=Snapshot(1_700_000_000_456, 0, RollbackState.SENT))  # fmt: skip
    job.targets.put_all([waiting, rolling])
    job.flush()
    reader = JobState.load(state, "acme", "safe")
    assert {t.client_id: t for t in reader.targets} == {"gw-1": waiting, "gw-2": rolling}
    done = TargetState("gw-2", 1, TargetStatus.PROCESS_FAILED, execution=1,
                       snapshot=Snapshot(1_700_000_000_456, 0, RollbackState.DONE))  # fmt: skip
    job.targets.put(done)
    job.flush()
    assert reader.targets.follow()
    assert reader.targets.get("gw-2") == done
    job.targets.settle()  # compacted: one line per target
    job.close()
    again = JobState.load(state, "acme", "safe")
    assert {t.client_id: t for t in again.targets} == {"gw-1": waiting, "gw-2": done}


# -- what only the state database has ----------------------------------------------------------


def test_a_write_for_a_job_whose_lease_is_lost_is_never_made(state_db: str) -> None:
    storage = PostgresStorage(state_db)
    leases = Leases(state_db, "runner-a", 15.0)
    ours = leases.acquire("acme", "ours")
    assert ours is not None
    storage.fences = {("acme", "ours"): ours}  # "theirs" is not ours
    with pytest.raises(LeaseLostError, match="acme/theirs") as lost, storage.batch():
        storage.append(at(storage, "scopes/acme/jobs/theirs/targets.journal"), b"x\n")
        storage.append(at(storage, "scopes/acme/jobs/ours/targets.journal"), b"y\n")
        storage.append(at(storage, "scopes/acme/devices.journal"), b"z\n")
    assert lost.value.jobs == {("acme", "theirs")}
    assert not storage.exists(at(storage, "scopes/acme/jobs/theirs/targets.journal"))
    assert storage.read(at(storage, "scopes/acme/jobs/ours/targets.journal")) == b"y\n"
    assert storage.read(at(storage, "scopes/acme/devices.journal")) == b"z\n"
    # another runner takes the job over (ours expired): our next write is refused
    with psycopg.connect(state_db, autocommit=True) as other:
        other.execute("UPDATE jobrunner_leases SET owner = 'runner-b', epoch = epoch + 1")
    with pytest.raises(LeaseLostError, match="acme/ours"):
        storage.append(at(storage, "scopes/acme/jobs/ours/targets.journal"), b"late\n")
    assert storage.read(at(storage, "scopes/acme/jobs/ours/targets.journal")) == b"y\n"
    storage.close()
    leases.close()


def test_a_database_that_goes_away_keeps_the_writes_for_later(state_db: str) -> None:
    storage = PostgresStorage(state_db)
    path = at(storage, "scopes/acme/jobs/x/executions/000001/log.txt")
    storage.append(path, b"before\n")
    name = state_db.rsplit("/", 1)[1]
    admin = state_db.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:  # the server drops us
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
    with pytest.raises(OSError, match="state database"):
        storage.append(path, b"during\n")
    storage.append(path, b"after\n")  # connected again: the kept write goes first
    assert storage.read(path) == b"before\nduring\nafter\n"
    storage.close()


def test_the_password_is_not_in_messages() -> None:
    conninfo = f"postgresql://jobrunner:s3cret@127.0.0.1:1/{uuid.uuid4().hex}"
    with pytest.raises(StateError) as refused:
        PostgresStorage(conninfo)
    assert "s3cret" not in str(refused.value) and "jobrunner:***@" in str(refused.value)


def test_records_are_readable_json_in_the_database(state_db: str) -> None:
    storage = PostgresStorage(state_db)
    state = StateDir(storage.root, storage)
    JobState.create(state, JobRecord(scope="acme", name="upgrade")).close()
    with psycopg.connect(state_db) as connection:
        row = connection.execute(
            "SELECT head FROM jobrunner_records WHERE key = 'scopes/acme/jobs/upgrade/job.json'"
        ).fetchone()
    assert row is not None and json.loads(bytes(row[0]))["name"] == "upgrade"
    storage.close()


def test_a_damaged_record_is_named_and_the_other_jobs_still_load(storage: Storage) -> None:
    state = StateDir(storage.root, storage)
    for name in ("good", "bad"):
        JobState.create(state, JobRecord(scope="acme", name=name)).close()
    storage.replace(state.job("acme", "bad").record, b'{"format": "jobrunner.job", "ver')
    with pytest.raises(StateError, match=r"scopes/acme/jobs/bad/job\.json: unreadable"):
        JobState.load(state, "acme", "bad")
    assert JobState.load(state, "acme", "good").record.name == "good"
    assert sorted(state.jobs()) == [("acme", "bad"), ("acme", "good")]
