"""An approve request handed to the daemon is input like any other: each malformed one is
answered with what is wrong and removed; a good one beside them is kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobrunner.engine.service import handoff
from jobrunner.state.journal import write_json
from jobrunner.state.layout import StateDir

BAD = [
    ("wave-not-a-name", {"wave": 7, "by": "alice"}, "options.wave is a wave's name"),
    ("wave-a-path", {"wave": "../up", "by": "alice"}, "wave '../up' is not a valid name"),
    ("nobody", {"wave": "rest"}, "options.by says who approves"),
    ("by-a-list", {"by": ["alice"]}, "options.by is who approves: printable"),
    ("by-with-a-newline", {"by": "alice\nroot"}, "options.by is who approves: printable"),
    ("by-too-long", {"by": "a" * 257}, "256 characters at most"),
]


@pytest.mark.parametrize(("options", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_malformed_approve_request_is_answered_and_a_good_one_kept(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    state = StateDir(tmp_path)
    folder = state.owners.inbox(None)
    storage = state.storage
    for request_id, given in (("1-bad", options), ("2-good", {"wave": "rest", "by": "alice"})):
        body = {"action": "approve", "scope": "acme", "name": "rollout", "options": given}
        write_json(storage, folder / f"{request_id}{handoff.REQUEST}", body, durable=False)

    found = handoff.pending(state)

    assert [(r.id, r.action, r.wave, r.by) for r in found] == [
        ("2-good", "approve", "rest", "alice")
    ]
    answer = json.loads(storage.read(folder / f"1-bad{handoff.REPLY}"))
    assert answer["error"].startswith(f"malformed request 1-bad{handoff.REQUEST}: ")
    assert message in answer["error"]
    assert not storage.exists(folder / f"1-bad{handoff.REQUEST}")
