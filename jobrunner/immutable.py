"""`@immutable`: a dataclass of values, as cheap to make as a mutable one.

A `frozen=True` dataclass sets every field in its `__init__` through `object.__setattr__`
(its own `__setattr__` refuses): a target's state of 13 fields took 3.4 us to make against
0.6 us for the same class unfrozen, and the engine makes several such values for every
request it sends (the target's next state, the request's tag, the reply's outcome). Values
made with `@immutable` have slots, equality and a hash as a frozen dataclass has; their
fields are read-only to mypy (`frozen_default`), which is where an assignment is refused:
at run time nothing refuses one, so none is ever written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def immutable(cls: type[T]) -> type[T]:
    """`@dataclass(frozen=True, slots=True)`, with the `__init__` of an unfrozen one."""
    return dataclass(slots=True, unsafe_hash=True)(cls)
