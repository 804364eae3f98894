"""jobrunner.cron gives the answers of the real Quartz 2.3.2 (tests/cron/quartz_vectors.json).

The vectors were produced by tests/cron/generate/QuartzVectors.java from the real library;
see tests/cron/generate/README.md. `disagreement` (in vectors.py) states the rule compared.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from jobrunner.cron.days import LastDayOfMonth
from tests.cron.vectors import Vector, disagreement, our_fires, parse, section, vectors

FIRES = section("fires")


def test_the_vectors_are_answers_of_quartz_2_3_2() -> None:
    data = vectors()
    assert data["quartz_version"] == "2.3.2"
    assert len(FIRES) >= 60
    assert len(section("syntax")) >= 200
    assert len(section("fuzz")) >= 1000
    assert len(section("dst_fuzz")) >= 500
    assert sum(v["valid"] for v in section("fuzz")) >= 500  # the fuzz is not all rubbish


@pytest.mark.parametrize(
    "vector", [v for v in FIRES if v["eval"] == "ok"], ids=lambda v: str(v["label"])
)
def test_fire_times_match_quartz(vector: Vector) -> None:
    assert disagreement(vector) is None


@pytest.mark.parametrize("name", ["syntax", "fuzz", "dst_fuzz"])
def test_every_vector_agrees_with_quartz(name: str) -> None:
    entries = section(name)
    problems = [problem for vector in entries if (problem := disagreement(vector))]
    shown = "\n".join(problems[:20])
    assert not problems, f"{len(problems)} of {len(entries)} differ from Quartz:\n{shown}"


def test_where_quartz_loops_on_a_w_day_in_a_dst_gap_we_skip_that_day() -> None:
    # Cairo moves its clocks at midnight on the last Friday of April; in 2028 that Friday
    # is also April's last weekday (LW), so 00:00:30 does not exist that day. Quartz's W
    # logic then moves back to that day forever; we skip the day, like any other DST gap.
    (vector,) = [v for v in FIRES if v["eval"] == "hang"]
    assert (vector["expr"], vector["zone"]) == ("30 0 0 LW * ?", "Africa/Cairo")
    expression = parse(vector["expr"])
    assert isinstance(expression.days, LastDayOfMonth)
    assert expression.days.weekday
    cairo = ZoneInfo("Africa/Cairo")
    assert our_fires(expression, vector, count=2) == [
        datetime(2028, 5, 31, 0, 0, 30, tzinfo=cairo),
        datetime(2028, 6, 30, 0, 0, 30, tzinfo=cairo),
    ]


def test_the_fire_table_covers_the_grammar_the_zones_and_dst() -> None:
    # Guards the table against shrinking when the vectors are regenerated.
    expressions = {v["expr"] for v in FIRES}
    assert len(expressions) >= 40
    zones = {v["zone"] for v in FIRES}
    required = {"UTC", "Europe/Rome", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"}
    assert required <= zones
    fields = [expression.split() for expression in expressions]
    assert any(len(f) == 7 for f in fields), "the year field"
    for pattern in (
        r"^\*$", r"^\?$", r"^\d+-\d+$", r",", r"/", r"^L$", r"^L-\d+$", r"^\d+W$", r"^LW$",
        r"^L-\d+W$", r"^\dL$", r"#", r"^[A-Z]{3}(-[A-Z]{3})?$", r"^[a-z]{3}",
    ):  # fmt: skip
        assert any(re.search(pattern, value) for f in fields for value in f), pattern
    labels = " ".join(v["label"] for v in FIRES)
    for words in ("Rome spring forward", "Rome fall back", "New York spring forward",
                  "New York fall back", "Lord Howe spring forward", "Lord Howe fall back",
                  "leap", "29 February", "fifth Friday", "never"):  # fmt: skip
        assert words in labels, words
    assert any(v["fires"] and v["fires"][-1] is None for v in FIRES), "one that never fires again"
