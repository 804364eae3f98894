"""The overview's order: what needs an operator first, from each job's summary row."""

from __future__ import annotations

from typing import Any

from jobrunner.engine.attention import ORDER, attention, by_attention


def _row(name: str, **facts: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"scope": "acme", "name": name, "counts": {}, "lastExecution": None}
    row.update(facts)
    return row


def test_each_job_is_ranked_by_what_needs_attention_first() -> None:
    ended = {"status": "TERMINATED"}
    rows = [
        _row("idle"),
        _row("fine", lastExecution=ended, counts={"PROCESS_OK": 3}),
        _row("gone", lastExecution=ended, orphaned=True),
        _row("held", lastExecution=ended, suspend=True),
        _row("busy", lastExecution={"status": "RUNNING"}),
        _row("clash", lastExecution=ended, conflict=True),
        _row("gated", lastExecution={"status": "RUNNING"}, rollout={"state": "awaiting-approval"}),
        _row("bad", lastExecution=ended, counts={"PROCESS_FAILED": 1, "PROCESS_OK": 9}),
        _row("stopped-by-gate", lastExecution={"status": "ABORTED"}, counts={"PROCESS_FAILED": 2}),
        {"scope": "acme", "name": "broken", "error": "job.json: not JSON"},
    ]
    ordered = by_attention(rows)
    assert [attention(r) for r in ordered] == list(ORDER)
    assert [r["attention"] for r in ordered] == list(ORDER)  # each row says its own
    assert [r["name"] for r in ordered] == [
        "broken", "stopped-by-gate", "bad", "gated", "clash", "busy", "held", "gone", "fine",
        "idle",
    ]  # fmt: skip
