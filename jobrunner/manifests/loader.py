"""Reading the jobs directory: every YAML file, every document, every error with its line.

One broken file never hides the errors of another, and the valid documents still load. A file
with errors is remembered as broken, so that nothing declared in it can be mistaken for
removed (the reconciler never deletes a job whose file it could not read).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from jobrunner.errors import BadValueError, YamlError
from jobrunner.manifests.base import API_VERSION
from jobrunner.manifests.checks import Collected, check_declarations
from jobrunner.manifests.declarations import Declared, ManifestSet, Origin, RejectedDocument
from jobrunner.manifests.devicelists import read_device_list
from jobrunner.manifests.errors import dotted, located_messages, suggest
from jobrunner.manifests.fields import SCOPE_PATTERN
from jobrunner.manifests.ignore import IGNORE_FILE, Ignored
from jobrunner.manifests.jobtemplates import TemplatedJob, TemplateSource, expand
from jobrunner.manifests.kinds import KINDS, Job, JobTemplate, Policy, Scope, Targets
from jobrunner.manifests.notification import Notification
from jobrunner.manifests.parsed import ParsedFiles
from jobrunner.manifests.secrets import LiteralSecret, secrets_in
from jobrunner.manifests.yamlsource import (
    DataPath,
    Document,
    SourceMap,
    read_located,
    read_plain,
    text_rests_in,
)

MAX_FILE_BYTES = 16 * 1024 * 1024
MANIFEST_SUFFIXES = (".yaml", ".yml")


def is_manifest_file(path: Path) -> bool:
    """Whether a file is read as manifests: `*.yaml` or `*.yml`, not hidden (the loader
    and the daemon's file watcher decide alike)."""
    return path.name.endswith(MANIFEST_SUFFIXES) and not path.name.startswith(".")


def _manifest_name(name: str) -> bool:
    """`is_manifest_file` of a name listed in a folder (no Path made for it)."""
    return name.endswith(MANIFEST_SUFFIXES) and not name.startswith(".")


def _parts(path: Path) -> tuple[str, ...]:
    return path.parts


def manifest_files(
    paths: Iterable[Path], unreadable: list[tuple[Path, str]] | None = None
) -> Iterator[Path]:
    """YAML files under each path (sorted, hidden files and folders such as .git skipped, and
    what a folder's `.jobrunnerignore` names); folders that cannot be listed, and an ignore
    file that cannot be used, are added to `unreadable` with the reason."""
    for root in paths:
        if not root.is_dir():
            yield root
            continue
        found: list[Path] = []
        ignored = Ignored(root)
        if ignored.problem is not None and unreadable is not None:
            unreadable.append((root / IGNORE_FILE, ignored.problem))

        def refused(error: OSError) -> None:
            if unreadable is not None:
                reason = error.strerror or str(error)
                unreadable.append((Path(error.filename), f"cannot read the folder: {reason}"))

        for folder, subfolders, names in os.walk(root, onerror=refused):
            here = Path(folder)
            subfolders[:] = sorted(
                d for d in subfolders if not d.startswith(".") and not ignored.folder(here / d)
            )
            found.extend(
                here / n for n in names if _manifest_name(n) and not ignored.file(here / n)
            )
        # In the order of paths (their parts compared), each path's parts made once.
        yield from sorted(found, key=_parts)


def load_manifests(
    paths: Sequence[Path], default_scope: str, parsed: ParsedFiles | None = None
) -> ManifestSet:
    """Read and check every manifest under `paths` (files or directories). `parsed`: the
    YAML of files read before, by their text's digest (taken from, and added to).

    ConfigError when `default_scope` (the configured scope) is not a valid scope name: it
    becomes a topic segment and a folder name, like the names written in the manifests."""
    if not re.match(SCOPE_PATTERN, default_scope):
        raise BadValueError(
            f"scope {default_scope!r} (--scope, JOBRUNNER_SCOPE or the configuration file) is"
            " not a valid scope name: use 1-63 letters, digits, '.', '_' or '-', starting with"
            " a letter or digit"
        )
    result = ManifestSet(default_scope=default_scope)
    collected = Collected()
    present = []
    for root in paths:
        if root.exists():
            present.append(root)
        else:
            result.error(root, 0, "no such file or directory; is --jobs-dir (jobsDir) right?")
            result.unreadable_files.add(root)
    unreadable: list[tuple[Path, str]] = []
    for file in manifest_files(present, unreadable):
        result.files.append(file)
        _load_file(file, result, collected, parsed)
    for folder, reason in unreadable:
        result.error(folder, 0, reason)
        result.unreadable_files.add(folder)
    for root in present:
        if root.is_dir() and not any(f.is_relative_to(root) for f in result.files):
            result.warning(root, 0, "no manifest (*.yaml, *.yml) in this directory")
    _expand_templated_jobs(collected, result)
    check_declarations(collected, result)
    result.diagnostics.sort(key=lambda d: (str(d.file), d.line))
    return result


def read_text(file: Path) -> str:
    """The text of a manifest file; YamlError when it is missing, huge, binary or not UTF-8."""
    return _read_bytes(file)[1]


def _read_bytes(file: Path) -> tuple[bytes, str]:
    """The bytes of a manifest file and their text (see `read_text`)."""
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise YamlError(
                1,
                f"the file is {size / 1_048_576:.1f} MB; manifests are at most"
                f" {MAX_FILE_BYTES // 1_048_576} MB (is it really a manifest?)",
            )
        raw = file.read_bytes()
    except FileNotFoundError:
        raise YamlError(1, "no such file or directory") from None
    except OSError as error:
        raise YamlError(1, f"cannot read the file: {error.strerror}") from None
    if b"\0" in raw:
        line = raw[: raw.index(b"\0")].count(b"\n") + 1
        raise YamlError(line, "the file is binary (it holds NUL bytes), not a YAML manifest")
    try:
        return raw, raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise YamlError(
            line, f"the file is not UTF-8 text (byte 0x{raw[error.start]:02x}); save it as UTF-8"
        ) from None


def _load_file(
    file: Path, result: ManifestSet, collected: Collected, parsed: ParsedFiles | None
) -> None:
    try:
        if not _utf8_name(file):
            raise YamlError(
                1,
                "the file name is not UTF-8 text; rename the file (its name is recorded with the"
                " jobs it declares)",
            )
        raw, text = _read_bytes(file)
        count = 0
        for document in _documents(file, raw, text, parsed):
            if document.data is None:
                continue
            count += 1
            _load_document(file, document.data, document.source, result, collected)
        if count == 0:
            result.warning(file, 1, "the file holds no manifest documents")
    except YamlError as error:
        result.error(file, error.line, error.message)
        result.unreadable_files.add(file)


def _documents(file: Path, raw: bytes, text: str, parsed: ParsedFiles | None) -> Iterable[Document]:
    """The documents of a file: as read before when `parsed` holds its text, else from its
    YAML (what the fast path reads is then kept in `parsed`). The fast path's text is not
    held for their lines: its file is read again when one is asked for."""
    documents = None if parsed is None else parsed.documents(raw, text)
    if documents is None:
        documents = read_plain(text)
        if documents is None:
            return read_located(text)  # anything unusual, and every fault: lines kept
        if parsed is not None:
            parsed.keep(raw, documents)
    text_rests_in(documents, file, raw)
    return documents


def _utf8_name(file: Path) -> bool:
    try:
        str(file).encode("utf-8")
    except UnicodeEncodeError:  # os.fsdecode kept undecodable bytes as surrogates
        return False
    return True


def _load_document(
    file: Path, data: Any, source: SourceMap, result: ManifestSet, collected: Collected
) -> None:
    if not isinstance(data, dict):
        shape = "a list" if isinstance(data, list) else "a single value"
        result.error(
            file,
            source.value_line(()),
            f"a manifest document must be a mapping (apiVersion, kind, metadata, ...);"
            f" this one is {shape}",
        )
        return
    kind = _check_header(file, data, source, result)
    if kind is None:
        return
    if kind == "Job" and _names_a_template(data):
        scope = data["metadata"].get("scope") or result.default_scope
        collected.templated_jobs.append(TemplatedJob(file, data, source, str(scope)))
        return
    if kind == "DeviceList":  # each device validated, then held lean
        read = read_device_list(data, Origin(file, source), result.default_scope, collected.shared)
        if isinstance(read, list):
            _reject(file, data, source, kind, read, result, collected)
        else:
            collected.device_lists.append(read)
        return
    model = KINDS[kind]
    try:
        manifest = model.model_validate(data)
    except ValidationError as error:
        _reject(file, data, source, kind, error, result, collected)
        return
    _collect(manifest, Origin(file, source), data, result, collected)


def _reject(
    file: Path,
    data: dict[str, Any],
    source: SourceMap,
    kind: str,
    error: ValidationError | list[ErrorDetails],
    result: ManifestSet,
    collected: Collected,
) -> None:
    for line, message in located_messages(error, KINDS[kind], data, source):
        result.error(file, line, message)
    rejected = _rejected(file, source, kind, data, result.default_scope)
    result.rejected.append(rejected)
    if kind == "JobTemplate" and rejected.scope and rejected.name:
        collected.invalid_templates.add((rejected.scope, rejected.name))
    if kind == "Job":  # still checked across files, as far as it reads
        collected.rejected_jobs.append((rejected, Origin(file, source), _targets_of(data)))


def _collect(
    manifest: Any, origin: Origin, data: dict[str, Any], result: ManifestSet, collected: Collected
) -> None:
    file, source = origin.file, origin.source
    if isinstance(manifest, Scope):
        collected.scopes.append(Declared(manifest, origin, manifest.metadata.name))
    elif isinstance(manifest, Policy):
        scope = manifest.metadata.scope or result.default_scope
        collected.policies.append(Declared(manifest, origin, scope))
    elif isinstance(manifest, JobTemplate):
        scope = manifest.metadata.scope or result.default_scope
        declared = Declared(manifest, origin, scope)
        collected.templates[(scope, manifest.metadata.name)] = TemplateSource(declared, data)
    elif isinstance(manifest, Notification):
        scope = manifest.metadata.scope or result.default_scope
        collected.notifications.append(Declared(manifest, origin, scope))
    else:
        scope = manifest.metadata.scope or result.default_scope
        collected.jobs.append(Declared(manifest, origin, scope))
        _warn_literal_secrets(file, manifest, source, result)


def _names_a_template(data: dict[str, Any]) -> bool:
    spec, metadata = data.get("spec"), data.get("metadata")
    return isinstance(spec, dict) and "template" in spec and isinstance(metadata, dict)


def _expand_templated_jobs(collected: Collected, result: ManifestSet) -> None:
    """Jobs that name a template, made now that every template is read; one that cannot be
    made is rejected (never taken for removed)."""
    for job in collected.templated_jobs:
        declared = expand(job, collected.templates, collected.invalid_templates, result)
        if declared is not None:
            collected.jobs.append(declared)
            continue
        rejected = _rejected(job.file, job.source, "Job", job.data, result.default_scope)
        result.rejected.append(rejected)
        result.broken_files.add(job.file)
        origin = Origin(job.file, job.source)
        collected.rejected_jobs.append((rejected, origin, _targets_of(job.data)))


def _warn_literal_secrets(file: Path, job: Job, source: SourceMap, result: ManifestSet) -> None:
    """A password written in a manifest stays in git history: say so, and what to write."""
    for index, step in enumerate(job.spec.steps):
        properties = getattr(step, "properties", None)
        if isinstance(properties, BaseModel):
            found = [p for p, secret in secrets_in(properties) if isinstance(secret, LiteralSecret)]
        elif isinstance(properties, dict):  # a template's, as written
            found = list(_literal_passwords(properties))
        else:
            continue
        for path in found:
            where = ("spec", "steps", index, "properties", *path)
            result.warning(
                file,
                source.line_of(where),
                f"step '{step.name}': properties.{dotted(path)} holds a literal password;"
                " use valueFrom: {env: NAME} or valueFrom: {file: PATH} (a value once"
                " committed stays in git history: change the password too)",
            )


def _literal_passwords(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[DataPath]:
    """Paths of text written under a `...password` key (a step that reads per-device values
    is kept as written: its secrets are found by name)."""
    if isinstance(value, dict):
        for key, item in value.items():
            below = (*path, key)
            typed = isinstance(item, dict) and item.get("type") == "Password"  # Configuration Put
            if typed and isinstance(item.get("value"), str):
                yield (*below, "value")
            elif str(key).lower().endswith("password") and isinstance(item, str):
                yield below
            elif (isinstance(item, dict) and "valueFrom" not in item) or isinstance(item, list):
                yield from _literal_passwords(item, below)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _literal_passwords(item, (*path, index))


def _check_header(
    file: Path, data: dict[str, Any], source: SourceMap, result: ManifestSet
) -> str | None:
    """The document's kind when apiVersion and kind are right, else None (errors recorded)."""
    ok = True
    if "apiVersion" not in data:
        result.error(file, source.value_line(()), f"missing apiVersion: write {API_VERSION}")
        ok = False
    elif data["apiVersion"] != API_VERSION:
        result.error(
            file,
            source.line_of(("apiVersion",)),
            f"apiVersion {data['apiVersion']!r} is not supported; write {API_VERSION}",
        )
        ok = False
    kind = data.get("kind")
    if "kind" not in data:
        result.error(file, source.value_line(()), f"missing kind: one of {', '.join(KINDS)}")
        return None
    if not isinstance(kind, str) or kind not in KINDS:
        hint = suggest(str(kind), KINDS) or f"; use one of: {', '.join(KINDS)}"
        result.error(file, source.line_of(("kind",)), f"unknown kind {kind!r}{hint}")
        return None
    return kind if ok else None


def _targets_of(data: dict[str, Any]) -> Targets | None:
    """The targets of a Job document that did not validate, when they do on their own."""
    spec = data.get("spec")
    try:
        return Targets.model_validate(spec.get("targets")) if isinstance(spec, dict) else None
    except ValidationError:
        return None


def _rejected(
    file: Path, source: SourceMap, kind: str, data: dict[str, Any], default_scope: str
) -> RejectedDocument:
    found = data.get("metadata")
    metadata: dict[str, Any] = found if isinstance(found, dict) else {}
    name = metadata.get("name")
    scope = name if kind == "Scope" else metadata.get("scope", default_scope)
    return RejectedDocument(
        file=file,
        line=source.value_line(()),
        kind=kind,
        scope=scope if isinstance(scope, str) else None,
        name=name if isinstance(name, str) else None,
    )
