"""Files that are empty, binary, huge, or built to exhaust memory are refused with a message."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from jobrunner.errors import ConfigError, YamlError
from jobrunner.manifests import ManifestSet, load_manifests
from jobrunner.manifests.loader import MAX_FILE_BYTES
from jobrunner.manifests.yamlsource import MAX_DEPTH, read_documents

from .conftest import MINIMAL_JOB, Write, messages


def alias_bomb(levels: int = 9) -> str:
    """The 'billion laughs': each level lists the previous one nine times (9**levels values)."""
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_without_expanding_it(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    path = write("bomb.yaml", alias_bomb())
    write("good.yaml", MINIMAL_JOB.format(name="ok"))

    tracemalloc.start()
    result = load()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    (error,) = messages(result, path)
    assert "alias bomb" in error[1]
    assert peak < 50 * 1024 * 1024
    assert ("acme", "ok") in result.jobs


def test_aliases_of_reasonable_size_are_fine() -> None:
    (document,) = read_documents("defaults: &d {timeout: 30s}\nstep: {<<: *d, name: x}\n")
    assert document.data["step"] == {"timeout": "30s", "name": "x"}


def test_explicit_keys_win_over_merged_ones_whatever_their_order() -> None:
    (document,) = read_documents("d: &d {a: 1, b: 2}\nm: {a: 9, <<: *d}\n")
    assert document.data["m"] == {"a": 9, "b": 2}


def test_deep_nesting_is_refused_with_its_line() -> None:
    text = "x:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(MAX_DEPTH + 5)) + "\n"
    with pytest.raises(YamlError) as caught:
        list(read_documents(text))
    assert "nested more than" in caught.value.message
    assert caught.value.line == MAX_DEPTH + 1


def test_deep_flow_nesting_does_not_exhaust_the_stack() -> None:
    with pytest.raises(YamlError) as caught:
        list(read_documents("[" * 100_000 + "]" * 100_000))
    # libyaml stops first (its own limit); the pure-Python parser reaches ours.
    assert "nest" in caught.value.message


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(YamlError) as caught:
        list(read_documents("a: &a [*a]\n"))
    assert "refers to itself" in caught.value.message


def test_huge_file_is_refused_before_it_is_read(
    write: Write, load: Callable[[], ManifestSet], jobs_dir: Path
) -> None:
    huge = jobs_dir / "huge.yaml"
    with huge.open("wb") as handle:  # sparse: 50 MB on paper, nothing to read
        handle.truncate(50 * 1024 * 1024)
    write("good.yaml", MINIMAL_JOB.format(name="ok"))

    result = load()

    (error,) = messages(result, huge)
    assert error == (
        1,
        f"the file is 50.0 MB; manifests are at most {MAX_FILE_BYTES // 1_048_576} MB"
        " (is it really a manifest?)",
    )
    assert ("acme", "ok") in result.jobs


def test_binary_file_is_refused(load: Callable[[], ManifestSet], jobs_dir: Path) -> None:
    path = jobs_dir / "image.yaml"
    path.write_bytes(b"apiVersion: x\n\x89PNG\x00\x01\x02")

    (error,) = messages(load(), path)

    assert error == (2, "the file is binary (it holds NUL bytes), not a YAML manifest")


def test_non_utf8_file_is_refused_with_the_line_of_the_bad_byte(
    load: Callable[[], ManifestSet], jobs_dir: Path
) -> None:
    path = jobs_dir / "latin1.yaml"
    path.write_bytes(b"apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: caf\xe9}\n")

    (error,) = messages(load(), path)

    assert error == (3, "the file is not UTF-8 text (byte 0xe9); save it as UTF-8")


def test_empty_file_is_a_warning_not_an_error(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    path = write("empty.yaml", "# nothing here yet\n")

    result = load()

    assert not result.errors
    assert [(w.file, w.line, w.message) for w in result.warnings] == [
        (path, 1, "the file holds no manifest documents")
    ]


def test_utf8_bom_is_accepted(load: Callable[[], ManifestSet], jobs_dir: Path) -> None:
    (jobs_dir / "bom.yaml").write_bytes(b"\xef\xbb\xbf" + MINIMAL_JOB.format(name="b").encode())
    assert ("acme", "b") in load().jobs


def test_hidden_files_and_folders_are_not_read(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    write(".git/config.yaml", "not: [valid")
    write(".#swap.yaml", "not: [valid")
    write("notes.txt", "not: [valid")
    assert not load().errors


def test_iso_times_stay_text_for_the_models_to_check() -> None:
    (document,) = read_documents("when: 2026-12-01T00:00:00Z\nday: 2026-12-01\n")
    assert document.data == {"when": "2026-12-01T00:00:00Z", "day": "2026-12-01"}


def test_a_file_name_that_is_not_utf8_is_refused_and_its_jobs_not_loaded(
    load: Callable[[], ManifestSet], jobs_dir: Path
) -> None:
    # Recorded with its jobs, such a name would make every later write of their state fail.
    path = jobs_dir / os.fsdecode(b"caf\xe9.yaml")
    path.write_text(MINIMAL_JOB.format(name="ok"))

    result = load()

    assert messages(result, path) == [
        (1, "the file name is not UTF-8 text; rename the file (its name is recorded with the"
         " jobs it declares)")
    ]  # fmt: skip
    assert result.jobs == {}
    assert path in result.unreadable_files


@pytest.mark.parametrize(
    "document",
    [
        MINIMAL_JOB.format(name="x").replace("scope: acme", "scope: ../../etc"),
        "apiVersion: jobrunner/v1\nkind: Scope\nmetadata: {name: ../x}\n",
        "apiVersion: jobrunner/v1\nkind: DeviceList\nmetadata: {scope: /etc}\ndevices: []\n",
        "apiVersion: jobrunner/v1\nkind: Policy\nmetadata: {scope: ..}\n"
        "spec: {allowedAuthors: [a@example.com]}\n",
    ],
    ids=["job", "scope", "device-list", "policy"],
)
def test_a_scope_name_with_path_traversal_is_refused(
    write: Write, load: Callable[[], ManifestSet], document: str
) -> None:
    path = write("traversal.yaml", document)

    [(_, message)] = messages(load(), path)

    assert "is not a valid scope name" in message


def test_a_configured_scope_with_path_traversal_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"scope '\.\./x' .* is not a valid scope name"):
        load_manifests([], default_scope="../x")


def test_a_folder_that_cannot_be_listed_is_an_error_and_keeps_its_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """os.walk skips a folder it cannot list unless asked: the loader asks, and says so (a
    test running as root cannot make a folder unreadable, so the refusal is simulated)."""
    (tmp_path / "team-a").mkdir()
    real_walk = os.walk

    def walk(top: str, onerror: object = None, **kwargs: object) -> object:
        assert callable(onerror)
        onerror(PermissionError(13, "Permission denied", str(tmp_path / "team-a")))
        return real_walk(top, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("jobrunner.manifests.loader.os.walk", walk)
    result = load_manifests([tmp_path], default_scope="acme")

    assert [str(d) for d in result.errors] == [
        f"{tmp_path / 'team-a'}: cannot read the folder: Permission denied"
    ]
    assert tmp_path / "team-a" in result.unreadable_files
