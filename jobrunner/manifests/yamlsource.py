"""Safe YAML reading that remembers where every key and value came from.

Manifests are untrusted input. This reader builds plain Python data (dict, list, str, int,
float, bool, None) from the YAML event stream itself, so that nothing can be constructed but
data, and so that it can refuse, with the line to blame, what the YAML libraries accept
silently: duplicate keys, tags that name Python objects, alias bombs, nesting deep enough to
exhaust the stack. ISO times stay strings: the manifest models parse them and insist on a zone.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.resolver import Resolver

from jobrunner.errors import YamlError

_Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_DEPTH = 64
# Per document, aliases expanded: room for a registry of 100,000 devices, and a "billion
# laughs" is refused after at most this much work because an alias costs its expanded size.
MAX_NODES = 2_000_000

TAG = "tag:yaml.org,2002:"
MERGE_KEY = "\0<<"  # not a text a YAML key can hold
_PLAIN_SCALAR_TAGS = {TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")}

PathKey = str | int
DataPath = tuple[PathKey, ...]


class SourceMap:
    """Where each part of one document is: 1-based lines of keys and of values, by data path.

    A document read by the fast path (`read_documents`) knows only its start and the line of
    its root; the rest is found when first asked for, by reading the file's text again with
    every position kept. Lines are asked for when something is wrong, which is rare: a
    DeviceList of 100,000 devices then costs neither the time nor the memory of a line for
    each of its 700,000 keys and values."""

    __slots__ = ("_key_lines", "_located", "_root_line", "_value_lines", "start_line")

    def __init__(
        self,
        start_line: int,
        key_lines: dict[DataPath, int] | None = None,
        value_lines: dict[DataPath, int] | None = None,
        *,
        root_line: int | None = None,
        located: tuple[_Located, int] | None = None,
    ) -> None:
        self.start_line = start_line
        self._key_lines = {} if key_lines is None else key_lines
        self._value_lines = {} if value_lines is None else value_lines
        self._root_line = root_line
        self._located = located

    def _found(self) -> None:
        if self._located is not None:
            text, index = self._located
            self._located = None
            maps = text.maps()
            if index < len(maps):  # else its file changed since: the start and root lines
                full = maps[index]
                self._key_lines, self._value_lines = full._key_lines, full._value_lines

    @property
    def key_lines(self) -> dict[DataPath, int]:
        self._found()
        return self._key_lines

    @property
    def value_lines(self) -> dict[DataPath, int]:
        self._found()
        return self._value_lines

    def line_of(self, path: DataPath) -> int:
        """Line of the key at `path` (or of the list item), else of its nearest recorded parent."""
        if not path and self._root_line is not None:
            return self._root_line  # no key is at (): the root's own line
        key_lines, value_lines = self.key_lines, self.value_lines
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            line = key_lines.get(prefix) or value_lines.get(prefix)
            if line is not None:
                return line
        return self.start_line

    def fast_lines(self) -> tuple[int, int] | None:
        """(start line, root line) of a document read by the fast path, which finds every
        other line from its file's text (`located`); None for one read keeping every line."""
        if self._root_line is None:
            return None
        return self.start_line, self._root_line

    def value_line(self, path: DataPath) -> int:
        """Line where the value at `path` starts (for a mapping: its first key)."""
        if not path and self._root_line is not None:
            return self._root_line
        line = self.value_lines.get(path)
        return line if line is not None else self.line_of(path)


class _Located:
    """The text of a file read by the fast path, to find its lines when asked: held, or let
    go (`rest_in`) and read again from its file then, when it is still the same text."""

    __slots__ = ("_digest", "_file", "_maps", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._maps: list[SourceMap] | None = None
        self._file: Path | None = None
        self._digest = b""

    def rest_in(self, file: Path, raw: bytes) -> None:
        """Let go of the text, which is `raw` decoded, as read from `file`: a line is asked
        for when something is wrong, which is rare, and the text of every manifest held for
        it is as large as the files (a DeviceList of 100,000 devices: 5 MB)."""
        if self._maps is None and self._file is None:
            self._file, self._digest, self._text = file, _digest(raw), ""

    def maps(self) -> list[SourceMap]:
        if self._maps is None:
            text = self._text if self._file is None else self._text_again(self._file)
            # A file changed since it was read finds no line but its documents' starts and
            # roots (kept in their SourceMaps): the lines of another text would be wrong.
            self._maps = [] if text is None else [d.source for d in read_located(text)]
            self._text, self._file = "", None
        return self._maps

    def _text_again(self, file: Path) -> str | None:
        try:
            raw = file.read_bytes()
            if _digest(raw) != self._digest:
                return None
            return raw.decode("utf-8-sig")
        except (OSError, UnicodeDecodeError):
            return None


def _digest(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=20).digest()


def text_rests_in(documents: list[Document], file: Path, raw: bytes) -> None:
    """The text the SourceMaps of the fast path's `documents` find their lines in let go,
    read again from `file` (whose bytes were `raw`) when a line is first asked for."""
    for document in documents:
        if document.source._located is not None:
            document.source._located[0].rest_in(file, raw)


def located(text: str) -> _Located:
    """The text of a file whose documents' SourceMaps find their lines in it when asked
    (`SourceMap(..., located=(located(text), index))`, index: the document's among those
    that hold something)."""
    return _Located(text)


@dataclass
class Document:
    data: Any
    source: SourceMap


@dataclass
class _Frame:
    """A mapping or sequence being built."""

    value: dict[str, Any] | list[Any]
    path: DataPath
    anchor: str | None
    line: int
    pending_key: str | None = None
    pending_key_line: int = 0
    merges: list[tuple[dict[str, Any], int]] = field(default_factory=list)


@dataclass
class _Anchored:
    value: Any
    size: int


class _DocumentBuilder:
    """Turns the events of one document into data and a SourceMap, iteratively."""

    def __init__(self, start_line: int) -> None:
        self.key_lines: dict[DataPath, int] = {}
        self.value_lines: dict[DataPath, int] = {}
        self.source = SourceMap(start_line, self.key_lines, self.value_lines)
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchored] = {}
        self.nodes = 0
        self.root: Any = None
        self.done = False
        self.sizes: dict[int, int] = {}

    # -- helpers -------------------------------------------------------------------------

    def _count(self, amount: int, line: int) -> None:
        self.nodes += amount
        if self.nodes > MAX_NODES:
            raise YamlError(
                line,
                f"the document expands to more than {MAX_NODES} values (a YAML alias bomb?);"
                " manifests are small: split it or remove the aliases",
            )

    def _child_path(self) -> DataPath | None:
        """Path of the next value, or None when the next scalar is a mapping key."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            return (*top.path, len(top.value))
        if top.pending_key is None:
            return None
        return (*top.path, top.pending_key)

    def _attach(self, value: Any, line: int, anchor: str | None, size: int) -> None:
        if anchor is not None:
            self.anchors[anchor] = _Anchored(value, size)
        if not self.stack:
            self.root = value
            self.done = True
            return
        top = self.stack[-1]
        if isinstance(top.value, list):
            top.value.append(value)
            return
        key = top.pending_key
        assert key is not None
        top.pending_key = None
        if key == MERGE_KEY:
            self._merge(top, value, line)
            return
        if key in top.value:
            raise YamlError(
                top.pending_key_line,
                f"duplicate key '{key}' (first at line {self.key_lines[(*top.path, key)]});"
                " YAML would silently keep only the last one",
            )
        top.value[key] = value
        self.key_lines[(*top.path, key)] = top.pending_key_line

    def _merge(self, frame: _Frame, value: Any, line: int) -> None:
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(s, dict) for s in sources):
            raise YamlError(line, "a merge key '<<' takes a mapping or a list of mappings")
        frame.merges.extend((s, line) for s in sources)

    # -- events --------------------------------------------------------------------------

    def scalar(self, event: yaml.ScalarEvent) -> None:
        line = _line(event)
        self._count(1, line)
        path = self._child_path()
        if path is None:  # a mapping key: keys are names, whatever YAML would make of them
            top = self.stack[-1]
            if event.tag not in (None, "!", TAG + "str"):
                raise YamlError(line, f"key '{event.value}' has a tag; keys are plain names")
            key = event.value
            if key == "<<" and event.implicit[0]:
                key = MERGE_KEY  # a plain << merges; a quoted '<<' is a key like any other
            top.pending_key = key
            top.pending_key_line = line
            return
        self.value_lines[path] = line
        self._attach(self._construct(event, line), line, event.anchor, 1)

    def _construct(self, event: yaml.ScalarEvent, line: int) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = _implicit_tag(event.value, event.implicit[0], event.implicit[1])
        if tag not in _PLAIN_SCALAR_TAGS:
            shown = tag.replace(TAG, "!!")
            raise YamlError(
                line,
                f"tag '{shown}' is not allowed; manifests hold plain data"
                " (text, numbers, true/false, lists and mappings)",
            )
        if tag in (TAG + "str", TAG + "timestamp"):
            return event.value
        return _typed_value(tag, event.value)

    def start_collection(
        self, event: yaml.MappingStartEvent | yaml.SequenceStartEvent, is_mapping: bool
    ) -> None:
        line = _line(event)
        expected = TAG + ("map" if is_mapping else "seq")
        if event.tag not in (None, "!", expected):
            shown = event.tag.replace(TAG, "!!")
            raise YamlError(line, f"tag '{shown}' is not allowed; manifests hold plain data")
        path = self._child_path()
        if path is None:
            raise YamlError(line, "a mapping or list cannot be a key; keys are plain names")
        if len(self.stack) >= MAX_DEPTH:
            raise YamlError(line, f"the document is nested more than {MAX_DEPTH} levels deep")
        self._count(1, line)
        self.value_lines[path] = line
        value: dict[str, Any] | list[Any] = {} if is_mapping else []
        self.stack.append(_Frame(value, path, event.anchor, line))

    def end_collection(self) -> None:
        frame = self.stack.pop()
        if isinstance(frame.value, dict):
            # Explicit keys win over merged ones, whatever their order in the text.
            for source, line in frame.merges:
                for key, merged in source.items():
                    if key not in frame.value:
                        frame.value[key] = merged
                        self.key_lines.setdefault((*frame.path, key), line)
        # Sizes make an alias cost what it expands to, counted in O(1) per alias.
        children = frame.value.values() if isinstance(frame.value, dict) else frame.value
        size = 1 + sum(self.sizes.get(id(child), 1) for child in children)
        self.sizes[id(frame.value)] = size
        self._attach(frame.value, frame.line, frame.anchor, size)

    def alias(self, event: yaml.AliasEvent) -> None:
        line = _line(event)
        anchored = self.anchors.get(event.anchor or "")
        if anchored is None:
            if any(f.anchor == event.anchor for f in self.stack):
                raise YamlError(line, f"alias '*{event.anchor}' refers to itself")
            raise YamlError(line, f"alias '*{event.anchor}' has no anchor '&{event.anchor}' above")
        path = self._child_path()
        if path is None:
            raise YamlError(line, "an alias cannot be a key; keys are plain names")
        self._count(anchored.size, line)
        self.value_lines[path] = line
        self._attach(anchored.value, line, None, anchored.size)


_RESOLVER = Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_CONSTRUCT = {
    TAG + "int": _CONSTRUCTOR.construct_yaml_int,
    TAG + "float": _CONSTRUCTOR.construct_yaml_float,
    TAG + "bool": _CONSTRUCTOR.construct_yaml_bool,
    TAG + "null": _CONSTRUCTOR.construct_yaml_null,
}


@functools.lru_cache(maxsize=8192)
def _implicit_tag(value: str, plain: bool, quoted: bool) -> str:
    """YAML 1.1's type of an untagged scalar. Cached: manifests repeat their values
    (definitions, durations, booleans), and the resolver is a chain of regular expressions."""
    tag: str = _RESOLVER.resolve(yaml.ScalarNode, value, (plain, quoted))  # type: ignore[no-untyped-call]
    return tag


@functools.lru_cache(maxsize=8192)
def _typed_value(tag: str, value: str) -> Any:
    """An int, float, bool or None from its text (immutable values: safe to share)."""
    return _CONSTRUCT[tag](yaml.ScalarNode(tag, value))


def _line(event: yaml.Event) -> int:
    mark = event.start_mark
    return mark.line + 1 if mark is not None else 1


def read_documents(text: str) -> Iterator[Document]:
    """Yield each document of a YAML stream with its SourceMap; raise YamlError at the first fault.

    Documents before a fault are yielded first, so a caller may keep them. Plain data (no
    tag, anchor, alias or merge key, no key twice) is read by a fast path that keeps no line
    but the documents' own; anything else, and every fault, by the reader that keeps them all.
    """
    fast = _read_plain(text)
    if fast is None:
        yield from read_located(text)
    else:
        yield from fast


def read_plain(text: str) -> list[Document] | None:
    """The documents of `text` read by the fast path, when it is plain data; else None (read
    it with `read_located`, which yields the documents before a fault, then raises it)."""
    return _read_plain(text)


def read_located(text: str) -> Iterator[Document]:
    """`read_documents` keeping the line of every key and value as it reads."""
    builder: _DocumentBuilder | None = None
    try:
        for event in yaml.parse(text, Loader=_Parser):
            if isinstance(event, yaml.DocumentStartEvent):
                builder = _DocumentBuilder(_line(event))
            elif builder is None:
                continue
            elif isinstance(event, yaml.ScalarEvent):
                builder.scalar(event)
            elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                builder.start_collection(event, isinstance(event, yaml.MappingStartEvent))
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                builder.end_collection()
            elif isinstance(event, yaml.AliasEvent):
                builder.alias(event)
            elif isinstance(event, yaml.DocumentEndEvent):
                if builder.done:
                    yield Document(builder.root, builder.source)
                builder = None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = error.problem or "malformed YAML"
        context = f" ({error.context})" if error.context else ""
        raise YamlError(line, f"YAML syntax error: {problem}{context}") from None
    except yaml.YAMLError as error:
        raise YamlError(1, f"YAML error: {error}") from None


class _UnusualError(Exception):
    """What the fast path leaves to the reader that keeps every line."""


_NO_KEY: Any = object()
_PLAIN_FIRST = frozenset(_RESOLVER.yaml_implicit_resolvers)
"""First characters for which YAML 1.1 may give a plain scalar a type other than text."""


def _read_plain(text: str) -> list[Document] | None:  # noqa: PLR0912, PLR0915 (one loop, inlined: it runs per event)
    """Every document of `text` when it is plain data, each with a SourceMap that finds its
    lines when asked; None when anything in it is for `read_located` to read or refuse.

    The same data as `read_located` builds, without a path or a line per value: one pass
    over the events, a stack of the collections being built."""
    if None in _PLAIN_FIRST:
        return None  # a resolver for any first character: not the stock YAML 1.1 one
    documents: list[Document] = []
    located = _Located(text)
    parser = _Parser(text)
    next_event = parser.get_event
    scalar_event, mapping_start, sequence_start = (
        yaml.ScalarEvent,
        yaml.MappingStartEvent,
        yaml.SequenceStartEvent,
    )
    mapping_end, sequence_end = yaml.MappingEndEvent, yaml.SequenceEndEvent
    document_start, document_end = yaml.DocumentStartEvent, yaml.DocumentEndEvent
    stream_end = yaml.StreamEndEvent
    plain_first, implicit_tag, typed_value = _PLAIN_FIRST, _implicit_tag, _typed_value
    str_tags = (TAG + "str", TAG + "timestamp")
    intern = sys.intern
    try:
        containers: list[Any] = []
        keys: list[Any] = []  # the pending key of each mapping being built
        nodes = 0
        start_line = root_line = 0
        root: Any = None
        done = False
        while True:
            event = next_event()
            kind = event.__class__
            if kind is scalar_event:
                nodes += 1
                if event.anchor is not None or event.tag is not None:
                    raise _UnusualError
                value: Any = event.value
                # One text object for each text repeated (keys, tags, definitions): a
                # DeviceList of 100,000 devices repeats `clientId` and its tags 100,000 times;
                # and its client ids are those the registry and the targets hold.
                value = intern(value)
                if containers and keys[-1] is _NO_KEY:  # a mapping key
                    top = containers[-1]
                    if value in top or (value == "<<" and event.implicit[0]):
                        raise _UnusualError
                    keys[-1] = value
                    continue
                plain = event.implicit[0]
                if plain and value[:1] in plain_first:
                    tag = implicit_tag(value, plain, event.implicit[1])
                    if tag not in str_tags:
                        value = typed_value(tag, value)
            elif kind is mapping_start or kind is sequence_start:
                nodes += 1
                if event.anchor is not None or event.tag is not None:
                    raise _UnusualError
                if containers and keys[-1] is _NO_KEY:
                    raise _UnusualError  # a mapping or list as a key
                if len(containers) >= MAX_DEPTH:
                    raise _UnusualError
                if not containers:
                    root_line = event.start_mark.line + 1
                if kind is mapping_start:
                    containers.append({})
                    keys.append(_NO_KEY)
                else:
                    containers.append([])
                    keys.append(None)  # a list takes no key
                continue
            elif kind is mapping_end or kind is sequence_end:
                value = containers.pop()
                keys.pop()
            elif kind is document_start:
                start_line = event.start_mark.line + 1
                nodes, root, done = 0, None, False
                continue
            elif kind is document_end:
                if nodes > MAX_NODES:
                    raise _UnusualError
                if done:
                    source = SourceMap(
                        start_line, root_line=root_line, located=(located, len(documents))
                    )
                    documents.append(Document(root, source))
                continue
            elif kind is stream_end:
                break
            elif kind is yaml.AliasEvent:
                raise _UnusualError
            else:
                continue
            # A value (scalar or collection just ended): into its parent, or the root.
            if not containers:
                if kind is scalar_event:
                    root_line = event.start_mark.line + 1
                root, done = value, True
                continue
            top = containers[-1]
            key = keys[-1]
            if key is None:
                top.append(value)
            else:
                top[key] = value
                keys[-1] = _NO_KEY
    except (_UnusualError, yaml.YAMLError):
        return None
    finally:
        parser.dispose()
    return documents
