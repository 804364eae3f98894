"""One device's record in the registry: what it is and what it said, held small.

A runner holds a record for every device of its fleet (100,000 of them, say) for as long as it
runs, so a record is a few slots: its client id, whether git declares it, its connection
status, when it was last seen as a number (epoch seconds; its text only when it is written
or shown), its display name, and the facts of its BIRTH as one tuple that devices reporting
the same model, firmware and applications share. The journal's line is unchanged: `lastSeen`
is written as ISO-8601 text, as it always was, and read from it.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

Facts = tuple[str | None, str | None, str | None, str | None, tuple[str, ...] | None]
"""A BIRTH's model, model id, firmware, framework version and application ids."""

_NO_FACTS: Final[Facts] = (None, None, None, None, None)


class DeviceStatus(StrEnum):
    """Connection status; the values are those of `jobrunner.device.lifecycle.ConnectionStatus`."""

    UNKNOWN = "UNKNOWN"
    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"
    MISSING = "MISSING"


_STATUSES = {status.value: status for status in DeviceStatus}
_TEXTS = ("lastSeen", "displayName", "model", "modelId", "firmware", "frameworkVersion")


def seconds(moment: datetime | float | None) -> float | None:
    """A moment as epoch seconds (a datetime without a zone is taken as UTC)."""
    if moment is None or isinstance(moment, float | int):
        return None if moment is None else float(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso(at: float) -> str:
    """`lastSeen` as the journal writes it: `2026-12-07T23:09:34.452495+00:00`. A moment
    read from that text gives it back exactly (a float holds epoch seconds to well under a
    microsecond until the year 2106)."""
    return datetime.fromtimestamp(at, UTC).isoformat()


class DeviceRecord:
    """One device of one scope, as recorded. Immutable: a change makes a new record."""

    __slots__ = ("client_id", "declared", "display_name", "facts", "seen", "status")

    client_id: str
    declared: bool
    status: DeviceStatus
    seen: float | None
    """When it was last seen, epoch seconds (None: never)."""
    display_name: str | None
    facts: Facts | None
    """What its BIRTH said besides its display name (None: nothing yet), shared."""

    def __init__(
        self,
        client_id: str,
        declared: bool = False,
        status: DeviceStatus = DeviceStatus.UNKNOWN,
        last_seen: datetime | float | None = None,
        display_name: str | None = None,
        model: str | None = None,
        model_id: str | None = None,
        firmware: str | None = None,
        framework_version: str | None = None,
        application_ids: tuple[str, ...] | None = None,
    ) -> None:
        facts = (model, model_id, firmware, framework_version, application_ids)
        self.client_id = client_id
        self.declared = declared
        self.status = status
        self.seen = seconds(last_seen)
        self.display_name = display_name
        self.facts = None if facts == _NO_FACTS else facts

    @classmethod
    def made(
        cls,
        client_id: str,
        declared: bool,
        status: DeviceStatus,
        seen: float | None,
        display_name: str | None,
        facts: Facts | None,
    ) -> DeviceRecord:
        """A record of these slots as they are (the registry's own, cheaper constructor)."""
        record = cls.__new__(cls)
        record.client_id = client_id
        record.declared = declared
        record.status = status
        record.seen = seen
        record.display_name = display_name
        record.facts = facts
        return record

    # -- what it holds, by name ------------------------------------------------------------

    @property
    def last_seen(self) -> datetime | None:
        return None if self.seen is None else datetime.fromtimestamp(self.seen, UTC)

    @property
    def model(self) -> str | None:
        return None if self.facts is None else self.facts[0]

    @property
    def model_id(self) -> str | None:
        """The BIRTH's model_id (`model` is its model_name, or this): selectors read it."""
        return None if self.facts is None else self.facts[1]

    @property
    def firmware(self) -> str | None:
        return None if self.facts is None else self.facts[2]

    @property
    def framework_version(self) -> str | None:
        return None if self.facts is None else self.facts[3]

    @property
    def application_ids(self) -> tuple[str, ...] | None:
        return None if self.facts is None else self.facts[4]

    @property
    def discovered(self) -> bool:
        """Known only because it connected: not declared in git."""
        return not self.declared

    def _key(self) -> tuple[Any, ...]:
        return (
            self.client_id, self.declared, self.status, self.seen, self.display_name, self.facts
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not DeviceRecord:
            return NotImplemented
        assert isinstance(other, DeviceRecord)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"DeviceRecord(client_id={self.client_id!r}, declared={self.declared!r},"
            f" status={self.status!r}, last_seen={self.last_seen!r},"
            f" display_name={self.display_name!r}, model={self.model!r},"
            f" model_id={self.model_id!r}, firmware={self.firmware!r},"
            f" framework_version={self.framework_version!r},"
            f" application_ids={self.application_ids!r})"
        )

    # -- changes ---------------------------------------------------------------------------

    def with_declared(self, declared: bool) -> DeviceRecord:
        return DeviceRecord.made(
            self.client_id, declared, self.status, self.seen, self.display_name, self.facts
        )

    def with_status(self, status: DeviceStatus, seen: float) -> DeviceRecord:
        return DeviceRecord.made(
            self.client_id, self.declared, status, seen, self.display_name, self.facts
        )

    def with_facts(self, display_name: str | None, facts: Facts | None) -> DeviceRecord:
        return DeviceRecord.made(
            self.client_id, self.declared, self.status, self.seen, display_name, facts
        )

    # -- records ---------------------------------------------------------------------------

    def as_record(self) -> dict[str, Any]:
        facts = self.facts or _NO_FACTS
        ids = facts[4]
        return {
            "clientId": self.client_id,
            "declared": self.declared,
            "status": self.status.value,
            "lastSeen": None if self.seen is None else iso(self.seen),
            "displayName": self.display_name,
            "model": facts[0],
            "modelId": facts[1],
            "firmware": facts[2],
            "frameworkVersion": facts[3],
            "applicationIds": None if ids is None else list(ids),
        }

    @classmethod
    def from_record(
        cls, record: dict[str, Any], shared: dict[Facts, Facts] | None = None
    ) -> DeviceRecord:
        """The record `as_record` wrote; ValueError saying which field is wrong. A start
        reads one for each device of the fleet: the checks are written out, not called.
        `shared`: the facts already held, by value (each distinct one is held once)."""
        get = record.get
        client_id = get("clientId")
        if not isinstance(client_id, str) or not client_id:
            raise ValueError("'clientId' is not a non-empty string")
        declared = get("declared", False)
        if not isinstance(declared, bool):
            raise ValueError("'declared' is not true or false")
        given = get("status", "UNKNOWN")
        status = _STATUSES.get(given) if isinstance(given, str) else None
        if status is None:
            raise ValueError(f"'status' {get('status')!r} is not a status")
        texts = [get(name) for name in _TEXTS]
        for name, value in zip(_TEXTS, texts, strict=True):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"'{name}' is not a string")
        seen, display_name, model, model_id, firmware, framework_version = texts
        ids = get("applicationIds")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            raise ValueError("'applicationIds' is not a list of strings")
        found: Facts = (
            model, model_id, firmware, framework_version, None if ids is None else tuple(ids)
        )  # fmt: skip
        facts: Facts | None = None
        if found != _NO_FACTS:
            facts = found if shared is None else shared.setdefault(found, found)
        return cls.made(
            sys.intern(client_id),  # the same text as the targets' and the manifests' ids
            declared,
            status,
            seconds(datetime.fromisoformat(seen)) if seen else None,
            display_name,
            facts,
        )
