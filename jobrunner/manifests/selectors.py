"""Label selectors (`targets.selector`): kubectl's syntax, over labels and reported facts.

    site=turin,line in (3,4),!legacy,kura.version>=5.4

A selector is terms joined by ',' and ANDed. A term is one of

    key=value  key==value  key!=value     equality (!= also holds when the key is absent)
    key in (a,b)  key notin (a,b)         set membership (notin also holds when absent)
    key  !key                             the key exists / does not
    key>=v  key>v  key<=v  key<v          version comparison (the key must exist)

Keys are DeviceList `labels` and, under the reserved `kura.` prefix, what a device reported
in its BIRTH: `kura.model` (model_id), `kura.firmware` (firmware_version), `kura.version`
(kura_version without its `KURA_` / `ESF_` prefix) and `kura.app` (one value per application
id; `kura.app=KEYS-V1` holds for a device that lists KEYS-V1 among others).

Versions compare by their first number with its dotted parts (`fw-5.4.1` is 5.4.1), part by
part as integers (5.10 > 5.4), missing parts as 0 (5.4 = 5.4.0); when the numbers are equal,
a version with something after its number (`7.3.0-SNAPSHOT`) comes before the one without,
as a pre-release comes before its release, and two such suffixes compare as text.
`packaging.version` is not used: it refuses `7.3.0-SNAPSHOT`, which Kura builds report.

A value is letters, digits, '-', '_', '.' and '+'; unlike kubectl, an empty value (`site=`)
is refused: it is far more often a slip than a wish for an empty label. A bad selector
raises SelectorError with the character (counted from 1) where it goes wrong.

The meaning of the parsed terms, and matching them against a device, is `labelmatch`; this
module reads the text and re-exports what the rest of the runner uses.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator, Field

from jobrunner.manifests.fields import LABEL_KEY_PATTERN
from jobrunner.manifests.labelmatch import (
    APP,
    COMPARISONS,
    FACT_KEYS,
    FACT_PREFIX,
    FIRMWARE,
    MODEL,
    VERSION,
    Facts,
    Op,
    Selector,
    Term,
    Version,
    device_facts,
    unmatched_labels,
)

__all__ = [
    "FACT_KEYS",
    "FACT_PREFIX",
    "Facts",
    "Selector",
    "SelectorError",
    "SelectorText",
    "Term",
    "Version",
    "device_facts",
    "parse_selector",
    "unmatched_labels",
]

MAX_LENGTH = 4096
EXAMPLE = "site=turin,line in (3,4),!legacy,kura.version>=5.4"


class SelectorError(ValueError):
    """A selector that does not parse: what is wrong, at which character, what would be right."""

    def __init__(self, text: str, position: int, problem: str) -> None:
        self.text, self.position, self.problem = text, position, problem
        super().__init__(f"selector {text!r}, at character {position + 1}: {problem}")


# --- the parser -------------------------------------------------------------------------------

_KEY = re.compile(LABEL_KEY_PATTERN)
_KEY_CHARS = re.compile(r"[A-Za-z0-9._/-]+")
_VALUE_CHARS = re.compile(r"[A-Za-z0-9._+-]+")
_SPACE = re.compile(r"\s*")
_OPERATORS = ("==", "!=", ">=", "<=", "=", ">", "<")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def fail(self, problem: str, at: int | None = None) -> SelectorError:
        return SelectorError(self.text, self.at if at is None else at, problem)

    def skip(self) -> None:
        found = _SPACE.match(self.text, self.at)
        assert found is not None
        self.at = found.end()

    def peek(self) -> str:
        return self.text[self.at : self.at + 1]

    def ended(self) -> bool:
        self.skip()
        return self.at >= len(self.text)

    def found(self) -> str:
        """What stands at the current character, for a message."""
        if self.at >= len(self.text):
            return "the end"
        token = re.match(r"\S+", self.text[self.at :])
        shown = token.group() if token else self.peek()
        return repr(shown[:20])

    def parse(self) -> Selector:
        if not self.text.strip():
            raise self.fail(f"the selector is empty; write terms such as {EXAMPLE}")
        terms = []
        while True:
            self.skip()
            start = self.at
            if self.peek() == "," or self.at >= len(self.text):
                raise self.fail(
                    "a term is missing (two commas, or a comma at the start or the end);"
                    " remove the extra comma"
                )
            term = self.term()
            terms.append(Term(term.key, term.op, term.values, self.text[start : self.at].strip()))
            if self.ended():
                return Selector(self.text, tuple(terms))
            if self.peek() != ",":
                raise self.fail(
                    f"expected ',' before the next term, found {self.found()}; terms are"
                    " separated by ',' (values are letters, digits, '-', '_' and '.')"
                )
            self.at += 1

    def term(self) -> Term:
        if self.peek() == "!":
            self.at += 1
            self.skip()
            key = self.key()
            self.skip()
            if self.text.startswith(("=", "!="), self.at) or self.word() in ("in", "notin"):
                raise self.fail(
                    f"'!' before a key says it is absent ('!{key}'), alone; to exclude a value"
                    f" write {key}!=VALUE or {key} notin (A,B)"
                )
            return Term(key, Op.ABSENT)
        key = self.key()
        self.skip()
        if self.at >= len(self.text) or self.peek() == ",":
            return Term(key, Op.EXISTS)
        word = self.word()
        if word in ("in", "notin"):
            return Term(key, Op(word), self.values_list(key, word))
        for operator in _OPERATORS:
            if self.text.startswith(operator, self.at):
                self.at += len(operator)
                op = Op.EQ if operator == "==" else Op(operator)
                return Term(key, op, (self.value(key, op),))
        raise self.fail(
            f"expected an operator after {key!r} (=, ==, !=, in, notin, >=, >, <=, <) or ','"
            f" after it, found {self.found()}"
        )

    def word(self) -> str:
        found = re.match(r"[a-z]+(?=\s|\()", self.text[self.at :])
        return found.group() if found else ""

    def key(self) -> str:
        start = self.at
        found = _KEY_CHARS.match(self.text, self.at)
        if found is None:
            raise self.fail(f"expected a label key (site, kura.version, ...), found {self.found()}")
        key = found.group()
        self.at = found.end()
        if not _KEY.match(key):
            raise self.fail(
                f"{key!r} is not a label key: 1-63 letters, digits, '-', '_' or '.', starting"
                " and ending with a letter or digit, optionally after a DNS prefix and '/'",
                start,
            )
        if key.startswith(FACT_PREFIX) and key not in FACT_KEYS:
            close = difflib.get_close_matches(key, FACT_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise self.fail(
                f"{key!r} is not a fact devices report; {hint}the keys under 'kura.' are"
                f" {', '.join(FACT_KEYS)}",
                start,
            )
        return key

    def value(self, key: str, op: Op) -> str:
        self.skip()
        start = self.at
        found = _VALUE_CHARS.match(self.text, self.at)
        if found is None:
            raise self.fail(
                f"expected a value after {key}{op.value}, found {self.found()};"
                f" write e.g. {key}{op.value}{_example(key, op)}"
            )
        self.at = found.end()
        value = found.group()
        if op in COMPARISONS:
            if key == APP:
                raise self.fail(
                    f"{APP} holds application ids, which have no order; compare it with =,"
                    f" !=, in or notin (e.g. {APP}=KEYS-V1)",
                    start,
                )
            if not value[0].isdigit():
                raise self.fail(
                    f"{op.value} compares versions, and {value!r} is not one; write digits"
                    f" and dots, e.g. {key}{op.value}{_example(key, op)}",
                    start,
                )
        return value

    def unclosed(self, key: str, word: str, opened: int, values: list[str]) -> SelectorError:
        return self.fail(
            f"the list opened at character {opened + 1} is not closed; write"
            f" {key} {word} ({_listed(values)})"
        )

    def values_list(self, key: str, word: str) -> tuple[str, ...]:
        self.at += len(word)
        self.skip()
        opened = self.at
        if self.peek() != "(":
            raise self.fail(
                f"expected '(' after {word!r}, found {self.found()}; write {key} {word} (A,B)"
            )
        self.at += 1
        values: list[str] = []
        while True:
            self.skip()
            if self.at >= len(self.text):
                raise self.unclosed(key, word, opened, values)
            found = _VALUE_CHARS.match(self.text, self.at)
            if found is None:
                raise self.fail(
                    f"expected a value in the list of {key!r}, found {self.found()};"
                    f" write {key} {word} (A,B)"
                )
            values.append(found.group())
            self.at = found.end()
            self.skip()
            if self.peek() == ")":
                self.at += 1
                return tuple(values)
            if self.peek() != ",":
                if self.at >= len(self.text):
                    raise self.unclosed(key, word, opened, values)
                raise self.fail(
                    f"expected ',' or ')' in the list of {key!r}, found {self.found()};"
                    f" write {key} {word} (A,B)"
                )
            self.at += 1


def _listed(values: list[str]) -> str:
    return ",".join(values) if values else "A,B"


def _example(key: str, op: Op) -> str:
    if op in COMPARISONS:
        return "5.4"
    return {MODEL: "RPI-3B", APP: "KEYS-V1", VERSION: "5.4.1", FIRMWARE: "5.4.1"}.get(key, "turin")


@lru_cache(maxsize=1024)
def parse_selector(text: str) -> Selector:
    """The selector `text` stands for; SelectorError saying where and what is wrong."""
    if len(text) > MAX_LENGTH:
        raise SelectorError(text[:40] + "...", MAX_LENGTH, f"longer than {MAX_LENGTH} characters")
    return _Parser(text).parse()


def _check(text: str) -> str:
    parse_selector(text)
    return text


SelectorText = Annotated[
    str,
    AfterValidator(_check),
    Field(
        max_length=MAX_LENGTH,
        description="a label selector, kubectl's syntax: `site=turin,line in (3,4),!legacy,"
        "kura.version>=5.4` (terms ANDed; over labels and the reported kura.model,"
        " kura.firmware, kura.version, kura.app)",
    ),
]
