"""Helpers to write manifests into a temporary jobs directory and load them."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from jobrunner.manifests import ManifestSet, load_manifests

JOB_HEADER = """\
apiVersion: jobrunner/v1
kind: Job
metadata:
  name: {name}
  scope: acme
spec:
"""

MINIMAL_JOB = (
    JOB_HEADER
    + """\
  targets: {{devices: [gw-1]}}
  steps:
    - {{name: stop, definition: Bundle Stop, properties: {{bundleId: 1}}}}
"""
)

REGISTRY = """\
apiVersion: jobrunner/v1
kind: DeviceList
metadata: {scope: acme}
devices:
  - {clientId: gw-1, tags: [line-1]}
  - {clientId: gw-2, tags: [line-2]}
"""

Write = Callable[[str, str], Path]


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "jobs.d"
    folder.mkdir()
    (folder / "registry.yaml").write_text(REGISTRY)
    return folder


@pytest.fixture
def write(jobs_dir: Path) -> Write:
    """write(relative_name, yaml_text) -> path; the text is dedented."""

    def _write(name: str, text: str) -> Path:
        path = jobs_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    return _write


@pytest.fixture
def load(jobs_dir: Path) -> Callable[[], ManifestSet]:
    return lambda: load_manifests([jobs_dir], default_scope="acme")


def job_with_spec(spec: str, name: str = "job-1") -> str:
    """A Job document whose spec body is `spec` (indented by the caller's dedent)."""
    return JOB_HEADER.format(name=name) + textwrap.indent(textwrap.dedent(spec), "  ")


def messages(result: ManifestSet, file: Path) -> list[tuple[int, str]]:
    """(line, message) of every error in one file."""
    return [(d.line, d.message) for d in result.errors if d.file == file]
