"""What needs an operator's attention first: the order of the jobs on the dashboard's
overview (and in `status -o json`'s `attention`), from one job's summary row."""

from __future__ import annotations

from typing import Any

ORDER = (
    "unreadable",  # its state cannot be read
    "aborted",  # its last execution was aborted (a rollout's gate or abort rule)
    "failed",  # targets failed
    "awaiting-approval",  # a wave waits for `jobrunner approve`
    "conflict",  # its manifest changes what was frozen: not applied
    "running",
    "suspended",
    "orphaned",  # its manifest was removed
    "ok",
    "idle",  # nothing ran yet
)
"""Attention, most urgent first."""


def attention(row: dict[str, Any]) -> str:
    """The first of ORDER that holds for a job's summary row (`summary_row`)."""
    if "error" in row:
        return "unreadable"
    last = row.get("lastExecution") or {}
    rollout = row.get("rollout") or {}
    if last.get("status") == "ABORTED" or rollout.get("state") == "aborted":
        return "aborted"
    if row.get("counts", {}).get("PROCESS_FAILED"):
        return "failed"
    if rollout.get("state") == "awaiting-approval":
        return "awaiting-approval"
    if row.get("conflict"):
        return "conflict"
    if last.get("status") == "RUNNING":
        return "running"
    if row.get("suspend"):
        return "suspended"
    if row.get("orphaned"):
        return "orphaned"
    return "ok" if last else "idle"


_RANK = {name: index for index, name in enumerate(ORDER)}


def by_attention(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows, each with its `attention`, what needs attention first, then by scope and
    name."""
    marked = [{**row, "attention": attention(row)} for row in rows]
    return sorted(marked, key=lambda r: (_RANK[r["attention"]], r["scope"], r["name"]))
