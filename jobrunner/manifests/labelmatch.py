"""What a label selector means: its terms, how each holds for a device, versions' order.

`jobrunner.manifests.selectors` reads the text of a selector into these values (its docstring
states the syntax and the rules); here they are matched against a device's facts: its
DeviceList labels and what its BIRTH said, under the reserved `kura.` keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

MODEL, FIRMWARE, VERSION, APP = "kura.model", "kura.firmware", "kura.version", "kura.app"
FACT_KEYS = (MODEL, FIRMWARE, VERSION, APP)
"""The reserved keys: what a device reports in its BIRTH."""
FACT_PREFIX = "kura."

Facts = Mapping[str, tuple[str, ...]]
"""What a selector reads of one device: key -> its values (one for a label; kura.app many)."""


class Op(StrEnum):
    EQ = "="
    NE = "!="
    IN = "in"
    NOTIN = "notin"
    EXISTS = "exists"
    ABSENT = "!"
    GE = ">="
    GT = ">"
    LE = "<="
    LT = "<"


COMPARISONS = (Op.GE, Op.GT, Op.LE, Op.LT)
_OPPOSITE = {Op.GE: "<", Op.GT: "<=", Op.LE: ">", Op.LT: ">="}


# --- versions ---------------------------------------------------------------------------------

_NUMBER = re.compile(r"\d+(?:\.\d+)*")


@dataclass(frozen=True, slots=True, order=True)
class Version:
    numbers: tuple[int, ...]
    released: bool
    """No suffix after the number: 7.3.0 comes after 7.3.0-SNAPSHOT."""
    suffix: str

    @staticmethod
    def read(text: str) -> Version | None:
        """The version in `text` (its first dotted number), None when it holds no number."""
        return _read_version(text)


@lru_cache(maxsize=4096)  # a fleet reports few versions: each is read once, not per device
def _read_version(text: str) -> Version | None:
    found = _NUMBER.search(text)
    if found is None:
        return None
    numbers = tuple(int(part) for part in found.group().split("."))
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers = numbers[:-1]  # 5.4.0 is 5.4
    suffix = text[found.end() :]
    return Version(numbers, not suffix, suffix)


def _compare(op: Op, have: Version, want: Version) -> bool:
    if op is Op.GE:
        return have >= want
    if op is Op.GT:
        return have > want
    if op is Op.LE:
        return have <= want
    return have < want


# --- the parsed form --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Term:
    key: str
    op: Op
    values: tuple[str, ...] = ()
    written: str = ""
    """The term as written (trimmed), for messages."""

    def holds(self, facts: Facts) -> bool:
        """Whether the device whose `facts` these are passes this term (`why_not` without
        the words: a selector over 10,000 devices asks it of each)."""
        have = facts.get(self.key, ())
        op = self.op
        if op is Op.EXISTS:
            return bool(have)
        if op is Op.ABSENT:
            return not have
        if op is Op.EQ or op is Op.IN:
            return any(v in self.values for v in have)
        if op is Op.NE or op is Op.NOTIN:
            return not any(v in self.values for v in have)
        want = _read_version(self.values[0])
        assert want is not None  # the parser refused an operand without a number
        for value in have:
            version = _read_version(value)
            if version is not None and _compare(op, version, want):
                return True
        return False

    def why_not(self, facts: Facts) -> str | None:
        """Why the device whose `facts` these are fails this term (None: it holds)."""
        have = facts.get(self.key, ())
        key, op = self.key, self.op
        if op is Op.EXISTS:
            return None if have else _absent(key)
        if op is Op.ABSENT:
            return None if not have else f"{key} is {_show(have)}"
        if op in (Op.EQ, Op.IN):
            if any(v in self.values for v in have):
                return None
            if not have:
                return _absent(key)
            if key == APP:  # its whole list would say less than what it lacks
                return f"{APP} lists none of {', '.join(self.values)}"
            wanted = self.values[0] if op is Op.EQ else f"in ({', '.join(self.values)})"
            return f"{key} is {_show(have)}, not {wanted}"
        if op in (Op.NE, Op.NOTIN):
            hit = [v for v in have if v in self.values]
            if hit and key == APP:
                return f"{APP} lists {', '.join(hit)}"
            return None if not hit else f"{key} is {_show(tuple(hit))}"
        if not have:
            return _absent(key)
        want = Version.read(self.values[0])
        assert want is not None  # the parser refused an operand without a number
        for value in have:
            version = Version.read(value)
            if version is not None and _compare(op, version, want):
                return None
        value = have[0]
        if Version.read(value) is None:
            return f"{key} {value!r} is not a version"
        return f"{key} {value} {_OPPOSITE[op]} {self.values[0]}"


def _absent(key: str) -> str:
    return f"no {key} reported" if key.startswith(FACT_PREFIX) else f"no label {key}"


def _show(values: tuple[str, ...]) -> str:
    return values[0] if len(values) == 1 else "(" + ", ".join(values) + ")"


@dataclass(frozen=True, slots=True)
class Selector:
    text: str
    terms: tuple[Term, ...]

    def matches(self, facts: Facts) -> bool:
        return all(term.holds(facts) for term in self.terms)

    def why_not(self, facts: Facts) -> str | None:
        """The first term the device fails, said (None: it matches)."""
        for term in self.terms:
            reason = term.why_not(facts)
            if reason is not None:
                return reason
        return None

    @property
    def keys(self) -> list[str]:
        return list(dict.fromkeys(term.key for term in self.terms))

    def could_match(self, labels: Facts) -> bool:
        """Whether a device with these labels and facts not known yet could match: the terms
        on labels hold (what git alone can tell before any device reported)."""
        return all(t.holds(labels) for t in self.terms if not t.key.startswith(FACT_PREFIX))


# --- a device's facts -------------------------------------------------------------------------

_VERSION_PREFIXES = ("KURA_", "ESF_")


def device_facts(
    labels: Mapping[str, str] | None = None,
    *,
    model: str | None = None,
    firmware: str | None = None,
    version: str | None = None,
    applications: Iterable[str] | None = None,
) -> dict[str, tuple[str, ...]]:
    """What a selector reads of a device: its labels, and what its BIRTH said under the
    reserved keys (`version`: Kura's, whose KURA_ / ESF_ prefix is dropped)."""
    facts: dict[str, tuple[str, ...]] = {key: (value,) for key, value in (labels or {}).items()}
    if model:
        facts[MODEL] = (model,)
    if firmware:
        facts[FIRMWARE] = (firmware,)
    if version:
        for prefix in _VERSION_PREFIXES:
            if version.upper().startswith(prefix):
                version = version[len(prefix) :]
                break
        facts[VERSION] = (version,)
    apps = tuple(applications or ())
    if apps:
        facts[APP] = apps
    return facts


def unmatched_labels(selector: Selector, devices: Iterable[Mapping[str, str]]) -> str | None:
    """Why no device with these labels could match (its facts aside: what git alone tells),
    naming the first label term that holds for none; None when one could."""
    labelled = [device_facts(labels) for labels in devices]
    if any(selector.could_match(facts) for facts in labelled):
        return None
    for term in selector.terms:
        if not term.key.startswith(FACT_PREFIX) and not any(term.holds(f) for f in labelled):
            return f"term {term.written!r} holds for no device"
    return "its terms hold together for no device"
