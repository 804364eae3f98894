"""The fast path's text is not held after a load: a line asked for reads the file again, and
finds it only in the same text (its digest): a file changed since gives its documents'
start and root lines, never the lines of another text."""

from __future__ import annotations

from pathlib import Path

from jobrunner.manifests.loader import load_manifests
from jobrunner.manifests.yamlsource import (
    DataPath,
    read_located,
    read_plain,
    text_rests_in,
)

TEXT = "# a comment\n---\nkind: DeviceList\ndevices:\n  - clientId: gw-1\n    tags:\n      - a\n"
PATHS: list[DataPath] = [("kind",), ("devices",), ("devices", 0), ("devices", 0, "tags", 0)]


def _let_go(file: Path) -> list[object]:
    raw = file.read_bytes()
    documents = read_plain(raw.decode("utf-8-sig"))
    assert documents is not None, "read by the fast path"
    text_rests_in(documents, file, raw)
    assert all(d.source._located[0]._text == "" for d in documents if d.source._located)
    return list(documents)


def test_a_line_asked_for_reads_the_same_text_again(tmp_path: Path) -> None:
    file = tmp_path / "devices.yaml"
    file.write_text(TEXT)
    (document,) = _let_go(file)
    (located,) = read_located(TEXT)
    for path in PATHS:
        assert document.source.line_of(path) == located.source.line_of(path)  # type: ignore[attr-defined]
    assert document.source.line_of(("devices", 0, "tags", 0)) == 7  # type: ignore[attr-defined]


def test_a_file_changed_since_gives_only_its_start_and_root_lines(tmp_path: Path) -> None:
    file = tmp_path / "devices.yaml"
    file.write_text(TEXT)
    (document,) = _let_go(file)
    file.write_text("\n\n\n" + TEXT)  # another text: its lines would be three off
    source = document.source  # type: ignore[attr-defined]
    assert source.line_of(("devices", 0, "tags", 0)) == source.start_line == 2
    assert source.value_line(()) == 3
    file.unlink()
    assert source.line_of(("kind",)) == 2


def test_a_loaded_manifest_s_error_still_names_its_line(tmp_path: Path) -> None:
    folder = tmp_path / "jobs.d"
    folder.mkdir()
    (folder / "devices.yaml").write_text(
        "apiVersion: jobrunner/v1\nkind: DeviceList\nmetadata:\n  scope: s\n  name: fleet\n"
        "devices:\n  - clientId: gw-1\n"
    )
    found = load_manifests([folder], default_scope="s")
    # The key's own line, found in the text read again (the document starts on line 1).
    lines = [(d.file.name, d.line, d.message) for d in found.diagnostics]
    assert lines == [("devices.yaml", 5, "unknown key 'name'; allowed keys: scope, description")]
