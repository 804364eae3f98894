"""Records a daemon holds for every job are held small, and behave as records still."""

from __future__ import annotations

import json
from pathlib import Path

from jobrunner.state.records import JobRecord, SourceRef
from jobrunner.state.stores.files import FileStorage


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
