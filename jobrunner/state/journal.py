"""Crash-safe records on any storage: documents replaced whole, journals of JSON lines.

Every record is written one of two ways (see `stores.base`), so that a process killed at any
instant leaves either the old or the new state, never a mix:

- `write_json`: a document replaced whole. Readers see the old one or the new one.
- `Journal`: JSON lines appended to one record. A crash can only tear the last line; reading
  drops a torn last line (it was never acknowledged) and reports any other damage with its
  file and line. `compact` replaces the journal by a snapshot, whole.

The first line of a journal is its header, `{"format": KIND, "version": N}`; a file written
by a newer jobrunner (a higher version) is refused with a message that says so.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

from jobrunner.errors import StateError, StateVersionError
from jobrunner.state.stores.base import Stamp, Storage

Record = dict[str, Any]


def write_json(storage: Storage, path: Path, value: Any, durable: bool = True) -> None:
    """Replace the document at `path` by `value` as JSON (indented: state is meant to be read
    by people too)."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    storage.replace(path, text.encode("utf-8"), durable)


def read_json(storage: Storage, path: Path, kind: str, version: int) -> Record:
    """A JSON record written by write_json with `format`/`version` keys; StateError if unusable
    (FileNotFoundError when there is none)."""
    try:
        value = json.loads(storage.read(path))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StateError(
            f"{path}: unreadable ({error}); restore it from a backup or remove it"
        ) from None
    if not isinstance(value, dict):
        raise StateError(f"{path}: not a JSON object; restore it from a backup or remove it")
    check_header(path, value, kind, version)
    return value


def check_header(path: Path, header: Record, kind: str, version: int) -> None:
    """Refuse a record of another kind, or written by a newer jobrunner."""
    if header.get("format") != kind:
        raise StateError(f"{path}: not a {kind} record (format {header.get('format')!r})")
    found = header.get("version")
    if not isinstance(found, int):
        raise StateError(f"{path}: the {kind} record has no version")
    if found > version:
        raise StateVersionError(
            f"{path}: written by a newer jobrunner ({kind} version {found}; this jobrunner"
            f" reads up to {version}); upgrade jobrunner to use this state directory"
        )


def _nothing() -> None:
    """The default `on_pending`."""


class Journal:
    """An append-only file of JSON lines after a header line; see the module docstring."""

    def __init__(
        self,
        storage: Storage,
        path: Path,
        kind: str,
        version: int,
        damaged: Callable[[str], object] | None = None,
    ) -> None:
        """`damaged`: told of each damaged line (file:line and what is wrong), which is then
        skipped, for a journal whose records can be learned again (the device registry);
        None: damage raises StateError (a job's journal: its job is left alone, reported)."""
        self.storage = storage
        self.path = path
        self.kind = kind
        self.version = version
        self.damaged = damaged
        self.line = 0
        """The line number of the record last yielded by `read` (for messages)."""
        self._pending: list[bytes] = []
        self.on_pending: Callable[[], object] = _nothing
        """Called when a record is queued and none was: an owner of many journals then
        flushes those with something queued, not every one of them."""
        self.read_to: tuple[Stamp, int, int] = (None, 0, 0)
        """(stamp, offset after the last whole line, lines) as last read: `read_appended`
        goes on from there."""

    # -- reading ---------------------------------------------------------------------------

    def read(self) -> Generator[Record]:
        """The records (without the header). A torn last line is dropped; other damage raises.
        The record is read LINES_AT_ONCE bytes at a time: its whole text is never held (a
        registry of 100,000 devices is 22 MB, read beside everything a start holds)."""
        self.read_to = (None, 0, 0)  # until the last piece is read: a reader stopped
        # halfway then reads it whole again
        try:
            pieces, stamp = self.storage.read_chunks(self.path, LINES_AT_ONCE)
        except FileNotFoundError:
            return
        offset = lines = 0
        rest = b""
        with contextlib.closing(pieces):  # read to its end, or stopped by damage: let go
            for piece in pieces:
                data = rest + piece if rest else piece
                whole = data.rfind(b"\n") + 1
                if whole:
                    yield from self._records(data, lines + 1)
                    offset += whole
                    lines += data.count(b"\n", 0, whole)
                rest = data[whole:]  # the start of a line the next piece ends (or a torn one)
        self.read_to = (stamp, offset, lines)

    def read_appended(self) -> Iterator[Record] | None:
        """The records appended since the last `read` or `read_appended`, for a reader of a
        journal another process writes (the dashboard); None when the record was replaced or
        cut (compacted): `read` it whole again."""
        stamp, offset, lines = self.read_to
        data = self.storage.read_after(self.path, stamp, offset)
        if data is None:
            return None
        whole = data.rfind(b"\n") + 1
        self.read_to = (stamp, offset + whole, lines + data.count(b"\n", 0, whole))
        return self._records(data[:whole], lines + 1)

    def _records(self, data: bytes, first: int) -> Iterator[Record]:
        """The records of `data`, whose first line is line `first` of the file (1: the header).
        What follows the last newline is a torn line (a write cut short), dropped on purpose."""
        for number, line in enumerate(_lines(data, data.rfind(b"\n") + 1), start=first):
            if not line:
                problem = f"{self.path}:{number}: empty line in a journal"
            else:
                try:
                    record = _loads(line)
                    problem = (
                        ""
                        if isinstance(record, dict)
                        else f"{self.path}:{number}: journal line is not a JSON object"
                    )
                except (UnicodeDecodeError, json.JSONDecodeError) as error:
                    problem = (
                        f"{self.path}:{number}: damaged journal line ({error.__class__.__name__})"
                    )
            if problem:
                if self.damaged is None or number == 1:  # a header that cannot be read
                    raise StateError(
                        f"{problem}; restore the file from a backup, or remove it to forget"
                        " its records"
                    )
                self.damaged(problem)
                continue
            if number == 1:
                check_header(self.path, record, self.kind, self.version)
                continue
            self.line = number
            yield record

    # -- writing ---------------------------------------------------------------------------

    def append(self, record: Record) -> None:
        """Queue one record; `flush` writes the queue (a batch of transitions costs one write)."""
        self.append_line(_line(record))

    def append_line(self, line: bytes) -> None:
        """Queue one record as `json_line` writes it (its owner made the bytes)."""
        if not self._pending:
            self.on_pending()
        self._pending.append(line)

    def flush(self, durable: bool = False) -> None:
        """Write queued records; with `durable`, also fsync (a crash then cannot lose them)."""
        if not self._pending:
            return
        self.storage.append(self.path, b"".join(self._pending), durable, self._header())
        self._pending.clear()

    def compact(self, records: Iterable[Record]) -> None:
        """Replace the whole journal by `records` (a snapshot), atomically."""
        self.compact_lines(_line(r) for r in records)

    def compact_lines(self, lines: Iterable[bytes]) -> None:
        """`compact`, the records as `json_line` writes them."""
        self.flush()
        body = b"".join(lines)
        self.storage.replace(self.path, self._header() + body)

    def close(self) -> None:
        self.storage.release(self.path)

    def _header(self) -> bytes:
        return _line({"format": self.kind, "version": self.version})


LINES_AT_ONCE = 1 << 18
"""Bytes of a journal read and cut into lines at once. A registry of 100,000 devices is
22 MB: read whole, its text would be held while its records are made (and, cut whole, its
lines beside it); read so, reading it takes about 1 MB at a time."""


def _lines(data: bytes, end: int) -> Iterator[bytes]:
    """`data[:end].split(b"\n")` without the empty last item (`end`: just after a newline, or
    0), cut LINES_AT_ONCE bytes at a time."""
    start = 0
    while start < end:
        cut = data.find(b"\n", min(start + LINES_AT_ONCE, end - 1), end)
        yield from data[start:cut].split(b"\n")
        start = cut + 1


_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads(line: bytes) -> Any:
    """`json.loads(line)`. A line that starts with `{"` is UTF-8 to `json.loads` (no BOM, no
    zero byte up front): decoding it here skips the encoding detection done per line. Such
    a line is read by the decoder's scanner itself, as `json.loads` does under its checks
    (half the cost of a line, and a start reads every line of every job and of the
    registry); a line the scanner does not read whole goes through `json.loads`, which
    then says what is wrong."""
    if line.startswith(b'{"'):
        text = line.decode("utf-8", "surrogatepass")
        try:
            record, end = _scan(text, 0)
        except (StopIteration, ValueError):
            return json.loads(text)
        return record if end == len(text) else json.loads(text)
    return json.loads(line)


def _slow_line(record: Record) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def _compact_encoder() -> Callable[[Record], bytes]:
    """`_slow_line`, made once instead of per record: `json.dumps` with non-default options
    builds a new encoder for every call, which made up half the cost of a journal append.
    The C encoder of the `json` module, built with the same options, writes the same bytes;
    where it is missing (another Python), or writes anything else, the slow path stays."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _slow_line
    try:
        encode = make(
            None,  # no circular check: records are flat values, never cyclic
            json.JSONEncoder().default,  # the same TypeError for what JSON cannot hold
            json.encoder.encode_basestring,  # ensure_ascii=False
            None,  # indent
            ":",
            ",",
            False,  # sort_keys
            False,  # skipkeys
            True,  # allow_nan
        )
    except TypeError:  # another signature: keep the documented path
        return _slow_line

    def line(record: Record) -> bytes:
        return ("".join(encode(record, 0)) + "\n").encode("utf-8")

    sample: Record = {"t": 'gw-é"1', "i": 1, "d": 1.5e300, "n": None, "b": True, "l": [1, "x"]}
    try:
        same = line(sample) == _slow_line(sample)
    except Exception:  # an encoder that cannot even encode this is not used
        same = False
    return line if same else _slow_line


_line = _compact_encoder()
json_line = _line
"""A record as one journal line: compact JSON, UTF-8, ending with a newline."""
json_text: Callable[[str], str] = json.encoder.encode_basestring
"""A string as `json_line` writes it, quotes included (escapes as `ensure_ascii=False`)."""
