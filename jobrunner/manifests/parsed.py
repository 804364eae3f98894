"""The YAML of manifest files as read before, by the digest of each file's text.

Reading the YAML is most of what loading manifests costs (a DeviceList of 100,000 devices:
about a second; a job's file: a tenth of a millisecond, its parser's events), and the text of
most files is the same from one start of the runner to the next. `ParsedFiles` keeps, for the
text of each file read, the data its documents hold and the lines of their starts and roots:
all a `Document` of the fast path (`yamlsource.read_documents`) holds besides the text itself.

It is addressed by content, never by a file's name, size or time: a text found here is the
same text, byte for byte (a BLAKE2b digest of it), read by the same reader (the stored
`parser`: the version of this format, of PyYAML and libyaml, and a digest of the code of
`yamlsource`, so that a change of either reads every file again). What it holds is plain
JSON (no object of any other kind can come out of it), and it is checked whole (a digest of
its lines in its header): a file that is damaged, cut, or of another version is read as
empty, and every manifest is read from its YAML as if there were none. Only what the fast
path read is kept (a document with a tag, anchor or alias, and a file with an error, is read
from its YAML each time), so that every message and its line is made as without it. The
models still validate every document.

A long list (a DeviceList's devices) is kept in parts of a thousand entries, each read back
on its own with its texts held once (as the YAML reader holds them): the copies the JSON
decoder makes of a tag repeated by 100,000 devices then never live at once, and leave no
holes in the heap that the devices held afterwards would pin (18 MB more resident, read
whole).
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Final

import yaml

from jobrunner.manifests.yamlsource import Document, SourceMap, located

FORMAT: Final = "jobrunner.parsed-manifests"
VERSION: Final = 1
CHUNK = 1000
"""Entries of a long list kept, and read back, at once."""
SEPARATOR = "\x1f"
"""Between the parts of a file's entry (JSON written in ASCII holds no control character)."""


@functools.cache
def parser_identity() -> str:
    """What read the data kept: a different one reads every file again."""
    import jobrunner.manifests.yamlsource as source  # noqa: PLC0415 (its own file, read once)

    code = hashlib.blake2b(Path(source.__file__).read_bytes(), digest_size=16).hexdigest()
    libyaml = getattr(getattr(yaml, "_yaml", None), "get_version_string", lambda: "none")()
    python = "{}.{}".format(*sys.version_info[:2])
    return f"{VERSION} pyyaml {yaml.__version__} libyaml {libyaml} python {python} code {code}"


def digest(raw: bytes) -> str:
    return hashlib.blake2b(raw, digest_size=20).hexdigest()


class ParsedFiles:
    """The data of the manifest files read before (see the module's docstring); `dump` gives
    what to keep after a load: the files read in it, and only those."""

    def __init__(self, stored: bytes | None = None) -> None:
        self._stored: dict[str, bytes] = _entries(stored) if stored else {}
        self._used: dict[str, bytes] = {}
        self.found = 0
        """Files whose documents came from here."""
        self.kept = 0
        """Files read from their YAML and kept."""

    def documents(self, raw: bytes, text: str) -> list[Document] | None:
        """The documents of the file whose bytes are `raw` (decoded: `text`), when kept."""
        key = digest(raw)
        entry = self._stored.get(key)
        if entry is None:
            return None
        try:
            documents = _documents(entry, text)
        except (ValueError, TypeError, IndexError, KeyError, StopIteration):
            return None  # cannot be: the whole file's digest held; read the YAML then
        self._used[key] = entry
        self.found += 1
        return documents

    def keep(self, raw: bytes, documents: list[Document]) -> None:
        """Keep what the fast path read of a file, before anything takes its data apart (a
        DeviceList's devices are let go as they are validated)."""
        kept: list[Any] = []
        parts: list[str] = []
        for document in documents:
            lines = document.source.fast_lines()
            if lines is None:
                return  # read keeping every line: not for here
            data, long = document.data, []
            if data.__class__ is dict:
                # A long list (a DeviceList's devices) in parts of CHUNK entries, each
                # decoded on its own: see `_documents`.
                for name, value in data.items():
                    if value.__class__ is list and len(value) > CHUNK:
                        chunks = range(0, len(value), CHUNK)
                        parts.extend(_json(value[n : n + CHUNK]) for n in chunks)
                        long.append([name, len(chunks)])
                if long:
                    data = {**data, **{name: [] for name, _ in long}}
            kept.append([lines[0], lines[1], data, long])
        try:
            entry = SEPARATOR.join([_json(kept), *parts]).encode("ascii")
        except (TypeError, ValueError):
            return  # not plain JSON data (cannot be for the fast path's)
        self._used[digest(raw)] = entry
        self.kept += 1

    def changed(self) -> bool:
        """Whether what `dump` gives differs from what was read (a file read anew, or one
        read before no longer read)."""
        return self.kept > 0 or self._used.keys() != self._stored.keys()

    def dump(self) -> bytes:
        body = b"".join(
            key.encode("ascii") + b"\t" + entry + b"\n" for key, entry in self._used.items()
        )
        header = {
            "format": FORMAT,
            "version": VERSION,
            "parser": parser_identity(),
            "check": digest(body),
        }
        return json.dumps(header).encode("ascii") + b"\n" + body


def _entries(stored: bytes) -> dict[str, bytes]:
    """The entries of a stored file, by digest; none when it is not whole or not ours."""
    first, _, body = stored.partition(b"\n")
    try:
        header = json.loads(first)
    except ValueError:
        return {}
    if not isinstance(header, dict):
        return {}
    if header.get("format") != FORMAT or header.get("parser") != parser_identity():
        return {}
    if header.get("check") != digest(body):
        return {}
    entries: dict[str, bytes] = {}
    for line in body.split(b"\n"):
        if line:
            key, _, entry = line.partition(b"\t")
            entries[key.decode("ascii")] = entry
    return entries


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def _documents(entry: bytes, text: str) -> list[Document]:
    """The documents as the fast path reads them from `text`, from what was kept of them."""
    head, *parts = entry.split(SEPARATOR.encode("ascii"))
    kept = json.loads(head)
    if not isinstance(kept, list):
        raise TypeError("not a list of documents")
    documents: list[Document] = []
    lines = located(text)
    chunks = iter(parts)
    for index, (start_line, root_line, data, long) in enumerate(kept):
        if not isinstance(start_line, int) or not isinstance(root_line, int):
            raise TypeError("a line is not a number")
        for name, count in long:
            entries = data[name]
            for _ in range(count):
                chunk = json.loads(next(chunks))
                _held_once(chunk)
                entries.extend(chunk)
        source = SourceMap(start_line, root_line=root_line, located=(lines, index))
        documents.append(Document(data, source))
    return documents


def _held_once(entries: list[Any]) -> None:
    """Each text of the entries of a long list (a DeviceList's devices: client ids, tags,
    names) held once, as the YAML reader holds them, a part at a time: the copies are let go
    while the next part is read into their place, and 100,000 devices leave no hole in the
    heap where their texts were. (A key is held once by the JSON decoder.)"""
    intern = sys.intern
    for entry in entries:
        if entry.__class__ is not dict:
            continue
        for key, item in entry.items():
            if item.__class__ is str:
                entry[key] = intern(item)
            elif item.__class__ is list:
                entry[key] = [intern(x) if x.__class__ is str else x for x in item]
