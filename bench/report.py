"""A row of the results table, and the table as text and as Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

MB = 1_000_000


@dataclass
class Row:
    scenario: str
    targets: int | None = None
    runner: float | None = None
    """Seconds of the measured jobrunner process (or phase)."""
    floor: float | None = None
    """Seconds of the floor, measured in the same run."""
    ops: float | None = None
    """Operations (requests, or targets for the async step) per second."""
    peak_rss: int | None = None
    state: int | None = None
    """Bytes in the state directory."""
    target: str = ""
    holds: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.runner is None or self.floor is None:
            return None
        return self.runner / self.floor

    def cells(self) -> list[str]:
        return [
            self.scenario,
            _number(self.targets),
            _seconds(self.runner),
            _seconds(self.floor),
            "" if self.ratio is None else f"{self.ratio:.2f}x",
            "" if self.ops is None else f"{self.ops:,.0f}",
            "" if self.peak_rss is None else f"{self.peak_rss / MB:.0f} MB",
            "" if self.state is None else f"{self.state / MB:.1f} MB",
            self.target,
            {None: "", True: "yes", False: "NO"}[self.holds],
        ]

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ratio": self.ratio}


HEADERS = [
    "scenario", "targets", "runner", "floor", "ratio", "ops/s", "peak RSS", "state", "target",
    "holds",
]  # fmt: skip


def _number(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f} s"


def text_table(rows: Sequence[Row]) -> str:
    cells = [HEADERS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADERS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {row.scenario}: {row.note}" for row in rows if row.note]
    return "\n".join([*lines, "", "notes:", *notes])


def markdown_table(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    notes = [f"- **{row.scenario}**: {row.note}" for row in rows if row.note]
    return "\n".join([*lines, "", *notes])
