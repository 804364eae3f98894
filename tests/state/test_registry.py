"""The device registry: statuses, declared vs discovered, reload, damage, compaction cost."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobrunner.errors import StateError, StateVersionError
from jobrunner.state.journal import Journal
from jobrunner.state.registry import DeviceRecord, DeviceRegistry, DeviceStatus

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def journal(state: Path, scope: str = "acme") -> Path:
    return state / "scopes" / scope / "devices.journal"


def test_lifecycle_changes_and_reload(tmp_path: Path) -> None:
    registry = DeviceRegistry(tmp_path)
    acme = registry.scope("acme")
    acme.declare(["gw-1", "gw-2"])
    acme.connected(
        "gw-1",
        T0,
        display_name="Line 3",
        model="RG 10-20",
        model_id="RG-10-20",
        firmware="fw.v42",
        framework_version="KURA_5.4.0",
        application_ids=["CMD-V1", "DEPLOY-V2"],
    )
    acme.connected("gw-9", T0 + timedelta(seconds=1))  # not declared: discovered
    acme.disconnected("gw-1", T0 + timedelta(seconds=2))
    acme.missing("gw-9", T0 + timedelta(seconds=3))
    assert acme.missing("gw-nobody", T0) is None and acme.disconnected("gw-nobody", T0) is None
    acme.connected("gw-1", T0 + timedelta(seconds=4), application_ids=["CMD-V1"])
    registry.close()

    reloaded = DeviceRegistry(tmp_path).scope("acme")
    assert reloaded.get("gw-1") == DeviceRecord(
        "gw-1",
        declared=True,
        status=DeviceStatus.CONNECTED,
        last_seen=T0 + timedelta(seconds=4),
        display_name="Line 3",  # kept: the APPS-like update did not say
        model="RG 10-20",
        model_id="RG-10-20",
        firmware="fw.v42",
        framework_version="KURA_5.4.0",
        application_ids=("CMD-V1",),
    )
    gw2, gw9 = reloaded.get("gw-2"), reloaded.get("gw-9")
    assert gw2 is not None and (gw2.status, gw2.last_seen, gw2.declared) == (
        DeviceStatus.UNKNOWN,
        None,
        True,
    )
    assert gw9 is not None and (gw9.status, gw9.discovered) == (DeviceStatus.MISSING, True)
    assert sorted(d.client_id for d in reloaded) == ["gw-1", "gw-2", "gw-9"]
    assert DeviceRegistry(tmp_path).scopes() == ["acme"]


def test_its_owner_leaving_settles_the_journal_to_a_line_per_device(tmp_path: Path) -> None:
    registry = DeviceRegistry(tmp_path)
    acme = registry.scope("acme")
    acme.declare(["gw-1", "gw-2"])
    for second in range(3):
        acme.connected("gw-1", T0 + timedelta(seconds=second))
        acme.disconnected("gw-1", T0 + timedelta(seconds=second, milliseconds=500))
    registry.close()  # a reader, or any closing: nothing rewritten
    assert len(journal(tmp_path).read_text().splitlines()) == 1 + 2 + 6

    registry = DeviceRegistry(tmp_path)
    before = sorted(registry.scope("acme"), key=lambda d: d.client_id)
    registry.close(settle=True)  # the runner that owns the state, leaving
    assert len(journal(tmp_path).read_text().splitlines()) == 1 + 2
    assert sorted(DeviceRegistry(tmp_path).scope("acme"), key=lambda d: d.client_id) == before


def test_undeclaring_keeps_seen_devices_as_discovered_and_forgets_the_others(
    tmp_path: Path,
) -> None:
    acme = DeviceRegistry(tmp_path).scope("acme")
    acme.declare(["gw-1", "gw-2"])
    acme.connected("gw-1", T0)
    acme.declare(["gw-3"])
    gw1 = acme.get("gw-1")
    assert gw1 is not None and gw1.discovered
    assert "gw-2" not in acme
    assert "gw-3" in acme
    acme.close()
    assert "gw-2" not in DeviceRegistry(tmp_path).scope("acme")


def test_an_unchanged_state_appends_nothing(tmp_path: Path) -> None:
    acme = DeviceRegistry(tmp_path).scope("acme")
    acme.declare(["gw-1"])
    acme.connected("gw-1", T0, display_name="x")
    lines = journal(tmp_path).read_text().count("\n")
    acme.declare(["gw-1"])
    acme.connected("gw-1", T0)
    acme.close()
    assert journal(tmp_path).read_text().count("\n") == lines


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        ('{"clientId": "gw-1", "status": "SLEEPING"}', "damaged device record ('status'"),
        ("{not json", "damaged journal line (JSONDecodeError)"),
        ("[1, 2]", "journal line is not a JSON object"),
    ],
)
def test_a_damaged_line_is_skipped_and_named_and_the_others_are_kept(
    tmp_path: Path, damage: str, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    acme = DeviceRegistry(tmp_path).scope("acme")
    acme.connected("gw-1", T0)
    acme.connected("gw-2", T0)
    acme.close()
    path = journal(tmp_path)
    lines = path.read_text().splitlines()
    lines[1] = damage  # gw-1's line: the scope's jobs must not all stop on it
    path.write_text("\n".join(lines) + "\n")

    again = DeviceRegistry(tmp_path).scope("acme")

    assert again.get("gw-1") is None and again.get("gw-2") is not None
    assert f"{path}:2: {said}" in caplog.text
    assert "skipped; the device is learned again when it speaks" in caplog.text
    again.connected("gw-1", T0)  # learned again, and written after the damage
    again.close()
    assert DeviceRegistry(tmp_path).scope("acme").get("gw-1") is not None


def test_a_damaged_header_still_refuses_the_journal(tmp_path: Path) -> None:
    acme = DeviceRegistry(tmp_path).scope("acme")
    acme.connected("gw-1", T0)
    acme.close()
    path = journal(tmp_path)
    path.write_text("{not a header\n" + path.read_text().split("\n", 1)[1])
    with pytest.raises(StateError, match=rf"{path}:1: damaged journal line"):
        DeviceRegistry(tmp_path).scope("acme")


def test_a_torn_last_line_is_dropped(tmp_path: Path) -> None:
    acme = DeviceRegistry(tmp_path).scope("acme")
    acme.connected("gw-1", T0)
    acme.close()
    with journal(tmp_path).open("ab") as handle:
        handle.write(b'{"clientId": "gw-2", "sta')
    reloaded = DeviceRegistry(tmp_path).scope("acme")
    assert [d.client_id for d in reloaded] == ["gw-1"]
    reloaded.connected("gw-3", T0)
    reloaded.close()
    assert sorted(d.client_id for d in DeviceRegistry(tmp_path).scope("acme")) == ["gw-1", "gw-3"]


def test_a_journal_from_a_newer_jobrunner_is_refused(tmp_path: Path) -> None:
    path = journal(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"format": "jobrunner.devices", "version": 99}) + "\n")
    with pytest.raises(StateVersionError, match="upgrade jobrunner"):
        DeviceRegistry(tmp_path).scope("acme")


def test_an_unsafe_scope_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StateError, match=r"scope '\.\./x' is not a valid name"):
        DeviceRegistry(tmp_path).scope("../x")


def test_a_burst_of_births_costs_linear_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10,000 BIRTHs of distinct devices, then 10,000 of the same 10: appends, plus
    compactions whose total size stays proportional to the number of messages."""
    compacted: list[int] = []
    real_compact = Journal.compact

    def counting(self: Journal, records: object) -> None:
        kept = list(records)  # type: ignore[call-overload]
        compacted.append(len(kept))
        real_compact(self, kept)

    monkeypatch.setattr(Journal, "compact", counting)
    acme = DeviceRegistry(tmp_path, autoflush=False).scope("acme")
    for n in range(10_000):
        acme.connected(f"gw-{n}", T0 + timedelta(milliseconds=n), application_ids=["CMD-V1"])
    acme.close()
    assert compacted == []  # one line per device: nothing to compact
    many = DeviceRegistry(tmp_path / "other", autoflush=False).scope("acme")
    for n in range(10_000):
        many.connected(f"gw-{n % 10}", T0 + timedelta(milliseconds=n))
    many.close()
    assert sum(compacted) <= 10 * len(compacted) and len(compacted) <= 10
    assert journal(tmp_path / "other").read_text().count("\n") <= 1 + 1024
    with DeviceRegistry(tmp_path / "other") as registry:
        reloaded = registry.scope("acme")
    gw3 = reloaded.get("gw-3")
    assert len(reloaded) == 10 and gw3 is not None
    assert gw3.last_seen == T0 + timedelta(milliseconds=9_993)


def test_a_registry_written_before_last_seen_was_held_as_a_number_loads_the_same(
    tmp_path: Path,
) -> None:
    """A journal as earlier releases wrote it (`lastSeen` ISO text, any offset) reads as the
    same moments, and a record written now is byte for byte the line they wrote (so they can
    read it too)."""
    path = journal(tmp_path)
    path.parent.mkdir(parents=True)
    old = [
        '{"format":"jobrunner.devices","version":1}',
        '{"clientId":"gw-1","declared":true,"status":"CONNECTED",'
        '"lastSeen":"2026-12-07T23:09:34.452495+00:00","displayName":null,"model":null,'
        '"modelId":null,"firmware":null,"frameworkVersion":null,"applicationIds":null}',
        '{"clientId":"gw-2","declared":false,"status":"MISSING",'
        '"lastSeen":"2026-12-08T01:09:34+02:00","displayName":"Line 3","model":"RG",'
        '"modelId":"RG-1","firmware":"fw","frameworkVersion":"KURA_5.4.0",'
        '"applicationIds":["CMD-V1"]}',
        '{"clientId":"gw-3","declared":true,"status":"UNKNOWN","lastSeen":null,'
        '"displayName":null,"model":null,"modelId":null,"firmware":null,'
        '"frameworkVersion":null,"applicationIds":null}',
    ]
    path.write_text("\n".join(old) + "\n")
    acme = DeviceRegistry(tmp_path).scope("acme")
    gw1, gw2, gw3 = acme.get("gw-1"), acme.get("gw-2"), acme.get("gw-3")
    assert gw1 is not None and gw2 is not None and gw3 is not None
    assert gw1.last_seen == datetime(2026, 12, 7, 23, 9, 34, 452495, tzinfo=UTC)
    assert gw2.last_seen == datetime(2026, 12, 7, 23, 9, 34, tzinfo=UTC)
    assert (gw2.model, gw2.model_id, gw2.firmware, gw2.application_ids) == (
        "RG", "RG-1", "fw", ("CMD-V1",)
    )  # fmt: skip
    assert gw3.last_seen is None and gw3.facts is None
    assert json.dumps(gw1.as_record(), separators=(",", ":")) == old[1]
    assert gw2.as_record()["lastSeen"] == "2026-12-07T23:09:34+00:00"  # said in UTC now


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2105, 12, 31)))
@settings(max_examples=500, derandomize=True, deadline=None, database=None)
def test_last_seen_held_as_a_number_writes_the_text_a_datetime_wrote(moment: datetime) -> None:
    """Epoch seconds in a float keep every microsecond of a moment until 2106: the text
    written from the number is the text written from the datetime it was made of."""
    moment = moment.replace(tzinfo=UTC)
    device = DeviceRecord("gw-1", last_seen=moment)
    assert device.last_seen == moment
    assert device.as_record()["lastSeen"] == moment.isoformat()
    assert DeviceRecord.from_record(device.as_record()) == device


def test_devices_that_report_the_same_facts_share_them(tmp_path: Path) -> None:
    """A fleet of one model, firmware and applications holds those facts once, as it runs
    and when it is loaded again."""
    registry = DeviceRegistry(tmp_path)
    acme = registry.scope("acme")
    for n in range(3):
        acme.connected(
            f"gw-{n}", T0, display_name=f"gateway {n}", model="RG", firmware="fw",
            application_ids=["CMD-V1", "DEPLOY-V2"],
        )  # fmt: skip
    acme.connected("gw-9", T0, model="other")
    held = [acme.get(f"gw-{n}") for n in range(3)]
    assert held[0] is not None and held[0].facts is not None
    assert all(d is not None and d.facts is held[0].facts for d in held)
    registry.close()
    again = DeviceRegistry(tmp_path).scope("acme")
    loaded = [again.get(f"gw-{n}") for n in range(3)]
    assert loaded[0] is not None and loaded[0].application_ids == ("CMD-V1", "DEPLOY-V2")
    assert all(d is not None and d.facts is loaded[0].facts for d in loaded)
    assert [d.display_name for d in loaded if d is not None] == [f"gateway {n}" for n in range(3)]
    other = again.get("gw-9")
    assert other is not None and other.model == "other" and other.facts is not loaded[0].facts
