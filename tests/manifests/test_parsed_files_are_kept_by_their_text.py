"""The YAML of manifest files read before is taken from what was kept of it, by the digest of
each file's text: the same declarations, the same messages at the same lines as read from the
YAML; a file whose text changed is read again; what is kept and is not whole, or was read by
another reader, is read as nothing kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jobrunner.manifests import DeclaredDevice, ManifestSet, load_manifests
from jobrunner.manifests import parsed as parsed_files
from jobrunner.manifests.parsed import ParsedFiles

SCOPE = "acme"
DEVICES = (
    "apiVersion: jobrunner/v1\nkind: DeviceList\nmetadata: {scope: acme}\ndevices:\n"
    + "".join(
        f"  - {{clientId: gw-{n}, tags: [fleet, g{n % 3}], labels: {{site: s{n % 2}}}}}\n"
        for n in range(40)
    )
    + "  - clientId: gw-100\n    displayName: Line 3\n    vars: {ntp: 10.1.2.3, port: 123}\n"
)
JOB = (
    "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {{name: {name}, scope: acme}}\n"
    "spec:\n  targets: {{tags: [g1]}}\n  steps:\n"
    "    - name: stop\n      definition: Bundle Stop\n      timeout: {timeout}\n"
    "      properties: {{bundleId: 42}}\n"
    "    - {{name: run, definition: Command Execution, properties: {{command: 'true',"
    " password: hunter2}}}}\n"
    "  schedules:\n    - {{name: nightly, type: cron, cron: '0 0 2 ? * *', timezone: UTC}}\n"
)
BAD_JOB = JOB.format(name="bad", timeout="30s").replace("bundleId: 42", "bundleId: forty")
BAD_DEVICES = DEVICES.replace("kind: DeviceList", "kind: DeviceList\nmetadata2: {}", 1).replace(
    "clientId: gw-7,", "clientId: 'gw 7',"
)


def _write(root: Path) -> Path:
    jobs = root / "jobs.d"
    jobs.mkdir()
    (jobs / "devices.yaml").write_text(DEVICES)
    for n in range(3):
        (jobs / f"job-{n}.yaml").write_text(JOB.format(name=f"job-{n}", timeout="30s"))
    (jobs / "bad.yaml").write_text(BAD_JOB)
    (jobs / "anchors.yaml").write_text(
        "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: anchored, scope: acme}\n"
        "spec:\n  targets: {devices: &d [gw-1]}\n  steps:\n"
        "    - {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}\n"
    )
    (jobs / "broken.yaml").write_text("apiVersion: jobrunner/v1\nkind: [Job\n")
    (jobs / "two.yaml").write_text(
        "---\n# a comment\n---\n" + JOB.format(name="second", timeout="1m") + "---\n"
        "apiVersion: jobrunner/v1\nkind: Scope\nmetadata: {name: acme}\nspec: {maxJobs: 9}\n"
    )
    return jobs


def _device(d: DeclaredDevice) -> tuple[Any, ...]:
    labels, values = dict(d.labels), dict(d.vars)
    return d.client_id, d.tags, d.position, d.display_name, d.line, d.timezone, labels, values


def _seen(manifests: ManifestSet) -> dict[str, Any]:
    """What a load declares and says, lines included (each asked of its SourceMap)."""
    return {
        "diagnostics": [str(d) for d in manifests.diagnostics],
        "jobs": {
            key: (d.manifest, d.origin.file, d.origin.source.start_line, d.origin.at("spec"))
            for key, d in manifests.jobs.items()
        },
        "devices": {
            scope: [_device(d) for d in devices.values()]
            for scope, devices in manifests.devices.items()
        },
        "scopes": {name: d.manifest for name, d in manifests.scopes.items()},
        "rejected": manifests.rejected,
        "broken": manifests.broken_files,
        "unreadable": manifests.unreadable_files,
    }


@pytest.mark.parametrize("chunk", [1000, 7])
def test_files_read_before_are_taken_from_what_was_kept_and_declare_the_same(
    tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parsed_files, "CHUNK", chunk)  # the devices kept in parts, or whole
    jobs = _write(tmp_path)
    from_yaml = _seen(load_manifests([jobs], SCOPE))
    assert from_yaml["diagnostics"], "the bad job and the broken file are told of"

    first = ParsedFiles()
    assert _seen(load_manifests([jobs], SCOPE, first)) == from_yaml
    # The plain files are kept; the one with an anchor, and the broken one, are not.
    assert (first.found, first.kept) == (0, 6)
    assert first.changed()

    stored = first.dump()
    assert stored.count(parsed_files.SEPARATOR.encode()) == (0 if chunk > 41 else 41 // chunk + 1)
    again = ParsedFiles(stored)
    assert _seen(load_manifests([jobs], SCOPE, again)) == from_yaml
    assert (again.found, again.kept) == (6, 0)
    assert not again.changed(), "nothing to write again"


def test_a_device_list_with_errors_taken_from_what_was_kept_says_them_at_their_lines(
    tmp_path: Path,
) -> None:
    jobs = _write(tmp_path)
    (jobs / "devices.yaml").write_text(BAD_DEVICES)
    from_yaml = _seen(load_manifests([jobs], SCOPE))
    assert any("devices.yaml:" in d and "metadata2" in d for d in from_yaml["diagnostics"])
    assert any("devices.yaml:13:" in d for d in from_yaml["diagnostics"]), "gw 7's line"
    kept = ParsedFiles()
    load_manifests([jobs], SCOPE, kept)
    again = ParsedFiles(kept.dump())
    assert _seen(load_manifests([jobs], SCOPE, again)) == from_yaml
    assert again.found == 6


def test_a_file_whose_text_changed_is_read_again_and_one_gone_is_let_go(tmp_path: Path) -> None:
    jobs = _write(tmp_path)
    kept = ParsedFiles()
    load_manifests([jobs], SCOPE, kept)
    (jobs / "job-0.yaml").write_text(JOB.format(name="job-0", timeout="45s"))
    (jobs / "job-1.yaml").unlink()

    changed = ParsedFiles(kept.dump())
    manifests = load_manifests([jobs], SCOPE, changed)
    assert _seen(manifests) == _seen(load_manifests([jobs], SCOPE))
    step = manifests.jobs[(SCOPE, "job-0")].manifest.spec.steps[0]
    assert step.timeout.total_seconds() == 45
    assert (changed.found, changed.kept) == (4, 1)
    assert len(changed.dump().splitlines()) == 1 + 5, "the header, then the five files read"


def _damaged(stored: bytes) -> list[bytes]:
    header, _, body = stored.partition(b"\n")
    other = json.loads(header)
    other["parser"] += " changed"
    return [
        stored[: len(stored) // 2],  # cut
        stored.replace(b"gw-1", b"gw-X", 1),  # a byte changed
        json.dumps(other).encode() + b"\n" + body,  # read by another reader
        b"",
        b"\0\xff not json",
    ]


@pytest.mark.parametrize("damage", range(5))
def test_what_was_kept_but_is_not_whole_is_read_as_nothing_kept(
    tmp_path: Path, damage: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parsed_files, "CHUNK", 10)
    jobs = _write(tmp_path)
    kept = ParsedFiles()
    load_manifests([jobs], SCOPE, kept)
    stored = _damaged(kept.dump())[damage]

    parsed = ParsedFiles(stored)
    assert _seen(load_manifests([jobs], SCOPE, parsed)) == _seen(load_manifests([jobs], SCOPE))
    assert (parsed.found, parsed.kept) == (0, 6)
