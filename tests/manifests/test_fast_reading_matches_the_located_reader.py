"""Plain manifests are read by a fast path that keeps no line but each document's own, and
finds the others when an error asks for one: the same data, the same lines and the same
errors as the reader that keeps every line as it reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from jobrunner.errors import YamlError
from jobrunner.manifests.loader import load_manifests
from jobrunner.manifests.yamlsource import _read_plain, read_documents, read_located

SETTINGS = settings(max_examples=200, derandomize=True, deadline=None, database=None)

PLAIN = [
    "a: 1\nb: [x, 'y', \"z\"]\nc: {d: null, e: ~, f: yes, g: 1.5, h: 0x1f, i: 2026-12-01}\n",
    "when: 2026-12-01T00:00:00Z\non: off\nempty:\nquoted: '1'\n'<<': text\n",
    "- 1\n- - 2\n  - {a: [], b: {}}\n",
    "---\na: 1\n---\n---\nb: 2\n...\n",
    "just text\n",
    "",
    "# only a comment\n",
    "apiVersion: jobrunner/v1\nkind: DeviceList\ndevices:\n"
    + "".join(f"  - {{clientId: gw-{n}, tags: [fleet, g{n % 3}]}}\n" for n in range(50)),
    "text: |\n  two\n  lines\nfolded: >\n  one\n  line\n",
]
UNUSUAL = [
    "a: &x 1\nb: *x\n",  # anchors and aliases
    "d: &d {a: 1}\nm: {<<: *d, b: 2}\n",  # a merge key
    "a: !!str 1\n",  # a tag
    "a: 1\na: 2\n",  # a key twice
    "? [a]\n: 1\n",  # a list as a key
    "a: [1, 2\n",  # a syntax error
    "[" * 70 + "]" * 70,  # deeper than MAX_DEPTH
]


def _read(reader: Any, text: str) -> Any:
    try:
        return [
            (d.data, d.source.start_line, d.source.key_lines, d.source.value_lines)
            for d in reader(text)
        ]
    except YamlError as error:
        return ("error", error.line, error.message)


@pytest.mark.parametrize("text", PLAIN)
def test_plain_text_is_read_fast_to_the_same_data_and_lines(text: str) -> None:
    fast = _read_plain(text)
    assert fast is not None, "read by the fast path"
    assert _read(lambda t: fast, text) == _read(read_located, text)
    for document, located in zip(_read_plain(text) or [], read_located(text), strict=True):
        for path in located.source.value_lines:
            assert document.source.line_of(path) == located.source.line_of(path)
            assert document.source.value_line(path) == located.source.value_line(path)


@pytest.mark.parametrize("text", UNUSUAL)
def test_anything_else_is_left_to_the_located_reader(text: str) -> None:
    assert _read_plain(text) is None
    assert _read(read_documents, text) == _read(read_located, text)


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
keys = st.text(min_size=1, max_size=6)


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4)


trees = st.recursive(scalars, _nested, max_leaves=12)


@SETTINGS
@given(trees, st.booleans())
def test_any_data_written_as_yaml_reads_the_same_both_ways(tree: Any, flow: bool) -> None:
    text = yaml.safe_dump_all([tree, {"second": tree}], default_flow_style=flow)
    assert _read(read_documents, text) == _read(read_located, text)


def test_valid_manifests_find_no_line_but_their_documents_own(tmp_path: Path) -> None:
    """Loading a valid DeviceList and a job keeps no line of their values: those are found
    only when a message asks for one (and then name the right line)."""
    devices = "".join(f"  - {{clientId: gw-{n}, tags: [fleet]}}\n" for n in range(100))
    (tmp_path / "devices.yaml").write_text(
        "apiVersion: jobrunner/v1\nkind: DeviceList\nmetadata: {scope: acme}\ndevices:\n" + devices
    )
    (tmp_path / "job.yaml").write_text(
        "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: check, scope: acme}\n"
        "spec:\n  targets: {tags: [fleet]}\n  steps:\n"
        "    - {name: stop, definition: Bundle Stop, properties: {bundleId: 42}}\n"
    )
    manifests = load_manifests([tmp_path], default_scope="acme")
    assert not manifests.errors
    job = manifests.jobs[("acme", "check")]
    device = manifests.devices["acme"]["gw-42"]
    assert job.origin.line() == 1
    assert job.origin.source._located is not None, "no line looked for yet"
    assert device.origin.source._located is not None
    assert device.line == 5 + 42, "found when asked"
    assert job.origin.line("spec", "steps", 0) == 7
