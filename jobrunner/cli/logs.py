"""The daemon's log on standard error: lines for a person, or one JSON object a line.

`text` is what a terminal and journald show: `TIME LEVEL MESSAGE`, the time in UTC.
`json` is for a log shipper (Loki, Elasticsearch, journald's JSON fields): each record is one
object with `time`, `level`, `logger` and `message`, plus what the record is about where the
code that logs it knows: `scope`, `job`, `execution`, `clientId`, `requestId` (passed as
`extra=` to the logging call), and `exception` with its traceback. A message that spans
lines (a conflict's differences) stays one object: a shipper never splits it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Final

FORMATS: Final = ("text", "json")
LEVELS: Final = ("debug", "info", "warning", "error")
FIELDS: Final = ("scope", "job", "execution", "clientId", "requestId")
"""What a record may be about, in the order a JSON line gives them."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(log_format: str, level: str) -> None:
    """Send the process's log records at `level` and above to standard error, as
    `log_format` says (`text` or `json`)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        text = logging.Formatter(
            "%(asctime)s.%(msecs)03dZ %(levelname)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S"
        )
        text.converter = time.gmtime
        handler.setFormatter(text)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
