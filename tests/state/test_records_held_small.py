"""Records a daemon holds for every job are held small, and behave as records still."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobrunner.errors import StateError
from jobrunner.state.frozensteps import frozen_steps
from jobrunner.state.records import FrozenJob, JobRecord, SourceRef
from jobrunner.state.stores.files import FileStorage
from jobrunner.state.targets import TargetState, TargetStatus


def test_loaded_records_share_their_set_fields_and_still_say_which_were_set(
    tmp_path: Path,
) -> None:
    storage = FileStorage(tmp_path)
    written = JobRecord(scope="acme", name="a", source=SourceRef(file="a.yaml", line=1))
    written.save(storage, tmp_path / "a.json")
    written.model_copy(update={"name": "b"}).save(storage, tmp_path / "b.json")
    a = JobRecord.load(storage, tmp_path / "a.json")
    b = JobRecord.load(storage, tmp_path / "b.json")
    assert a.model_fields_set is b.model_fields_set == set(JobRecord.model_fields)
    assert a.source is not None and b.source is not None
    assert a.source.model_fields_set is b.source.model_fields_set

    a.problem = "changed"  # an assignment, a copy: nothing of the other record moves
    copied = b.model_copy(update={"suspend": True})
    assert b.model_dump() == JobRecord.load(storage, tmp_path / "b.json").model_dump()
    assert copied.suspend and copied.model_fields_set is not b.model_fields_set
    assert a.model_dump(exclude_unset=True) == a.model_dump()

    # A record written without some fields (an older release's) keeps its own set.
    raw = json.loads((tmp_path / "a.json").read_text())
    del raw["zones"], raw["queued"]
    (tmp_path / "old.json").write_text(json.dumps(raw))
    old = JobRecord.load(storage, tmp_path / "old.json")
    assert old.model_fields_set == set(JobRecord.model_fields) - {"zones", "queued"}
    assert a.model_fields_set == set(JobRecord.model_fields)


def test_a_target_at_rest_is_held_small_and_is_the_same_value() -> None:
    """A target with no request, operation, failure, stage or snapshot holds those in no slot
    of their own: the same value, equal and hashed alike however it was made, a third
    smaller than the 15 slots it had."""
    rest = TargetState("gw-1", 2, TargetStatus.PROCESS_OK, "done", 1, updated=5.0, attempts=1)
    flying = rest.replace(status=TargetStatus.PROCESS_AWAITING, request_id="r", deadline=9.0)
    assert (flying.request_id, flying.deadline, flying.failure) == ("r", 9.0, None)
    landed = flying.replace(status=TargetStatus.PROCESS_OK, request_id=None, deadline=None)
    assert landed == rest and hash(landed) == hash(rest) and landed != flying
    assert repr(rest) == (
        "TargetState(client_id='gw-1', step_index=2, status=<TargetStatus.PROCESS_OK:"
        " 'PROCESS_OK'>, message='done', execution=1, request_id=None, operation_id=None,"
        " phase=None, deadline=None, updated=5.0, failure=None, attempts=1, started_in=None,"
        " stage=None, snapshot=None)"
    )
    with pytest.raises(TypeError, match="no field"):
        rest.replace(request="r")

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [TargetState(f"gw-{n}", 2, TargetStatus.PROCESS_OK) for n in range(1000)]
        each = (tracemalloc.get_traced_memory()[0] - before) / len(held)
    finally:
        tracemalloc.stop()
    # The value itself (its client id's text aside: about 60 B, held once for the runner).
    assert each - 60 <= 120, f"{each:.0f} B a target at rest"


def test_jobs_frozen_with_the_same_steps_share_their_step_models(tmp_path: Path) -> None:
    """1,000 jobs of one rollout validate their frozen steps once and hold one set of step
    models; a job whose steps differ has its own, and damage is still told per record."""
    steps: list[dict[str, Any]] = [
        {
            "name": "stop",
            "definition": "Bundle Stop",
            "timeout": "30s",
            "properties": {"bundleId": 42},
        },
    ]
    first = frozen_steps(json.loads(json.dumps(steps)), tmp_path / "a.json")
    second = frozen_steps(json.loads(json.dumps(steps)), tmp_path / "b.json")
    assert first == second and first[0] is second[0] and first is not second
    other = frozen_steps([{**steps[0], "properties": {"bundleId": 43}}], tmp_path / "c.json")
    assert other[0] is not first[0] and other[0] != first[0]
    with pytest.raises(StateError, match=r"d\.json: frozen step 0 does not validate"):
        frozen_steps([{**steps[0], "properties": {"bundleId": "x"}}], tmp_path / "d.json")


def test_loaded_records_share_the_equal_parts_of_their_spec_and_frozen_steps(
    tmp_path: Path,
) -> None:
    """1,000 jobs of one rollout differ by their targets: their steps and schedules, as
    read, are held once; the records read are the records written, and a reconcile's new
    spec or a record's own fields move nothing in another record."""
    storage = FileStorage(tmp_path)
    steps: list[dict[str, Any]] = [
        {"name": "stop", "definition": "Bundle Stop", "properties": {"bundleId": 42}},
        {"name": "start", "definition": "Bundle Start", "properties": {"bundleId": 42}},
    ]

    def written(name: str, tag: str, bundle: int = 42) -> JobRecord:
        own = [{**s, "properties": {"bundleId": bundle}} for s in steps]
        spec = {"targets": {"tags": [tag]}, "steps": own, "schedules": [], "run": "1"}
        frozen = FrozenJob(
            at=datetime(2026, 12, 1, tzinfo=UTC), targets=["gw-1"], steps=own, digest="d"
        )
        record = JobRecord(scope="acme", name=name, spec=spec, frozen=frozen)
        record.save(storage, tmp_path / f"{name}.json")
        return record

    records = [written("a", "g1"), written("b", "g2"), written("c", "g3", bundle=43)]
    a, b, c = (JobRecord.load(storage, tmp_path / f"{r.name}.json") for r in records)
    for loaded, record in zip((a, b, c), records, strict=True):
        assert loaded.model_dump(exclude={"updated"}) == record.model_dump(exclude={"updated"})
    assert a.frozen is not None and b.frozen is not None and c.frozen is not None
    assert a.spec["steps"] is b.spec["steps"] and a.spec["schedules"] is b.spec["schedules"]
    assert a.spec["targets"] is not b.spec["targets"] and a.spec is not b.spec
    assert a.frozen.steps is not b.frozen.steps
    assert all(x is y for x, y in zip(a.frozen.steps, b.frozen.steps, strict=True))
    assert c.spec["steps"] is not a.spec["steps"] and c.frozen.steps[0] is not a.frozen.steps[0]

    a.spec = {**a.spec, "run": "2"}  # as a reconcile gives a record its manifest anew
    a.suspend = True
    assert b.spec["run"] == "1" and not b.suspend
    assert b.model_dump(exclude={"updated"}) == records[1].model_dump(exclude={"updated"})
