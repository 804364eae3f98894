"""What `plan -v` says of a label selector over a big fleet: bounded, and why for each miss."""

from __future__ import annotations

from jobrunner.engine.planning.selection import SHOWN, select
from jobrunner.manifests.selectors import device_facts, parse_selector


def test_a_selector_over_a_big_fleet_is_shown_in_bounded_lines() -> None:
    clients = [f"gw-{n:05d}" for n in range(10_000)]
    facts = {
        c: device_facts(version="KURA_5.5.0" if n % 2 else "KURA_4.1.0")
        for n, c in enumerate(clients)
    }

    found = select(parse_selector("kura.version>=5.4"), clients, facts)
    lines = found.lines()

    assert len(found.matched) == 5_000 and found.missed == 5_000
    assert len(found.why) == SHOWN
    assert lines[0].startswith(
        "selector 'kura.version>=5.4' matches 5000 of 10000 known device(s): gw-00001, gw-00003"
    )
    assert lines[0].endswith(" and 4980 more")
    assert lines[1:3] == ["not matched (5000):", "  gw-00000: kura.version 4.1.0 < 5.4"]
    assert lines[-1] == "  and 4990 more"
    assert len(lines) == 2 + SHOWN + 1


def test_a_device_never_heard_of_is_told_what_is_missing() -> None:
    found = select(parse_selector("site=turin,kura.app=KEYS-V1"), ["gw-1", "gw-2"], {
        "gw-1": device_facts({"site": "turin"}, applications=["KEYS-V1"]),
    })  # fmt: skip

    assert found.matched == ["gw-1"]
    assert found.as_json()["why"] == [{"clientId": "gw-2", "reason": "no label site"}]
