"""The garbage collector while the engine runs.

The runner holds a few objects per target (its state, its device's record, the parsed
manifests) for as long as an execution runs: at 10,000 targets some 150,000 objects, at
100,000 over a million. CPython's collector only frees reference cycles, which the hot path
hardly makes, yet every full collection walks every tracked object: measured on a
10,000-target 3-step execution, full collections took 17 % of the runner's CPU and freed
next to nothing. `long_lived()` moves what exists once the execution is loaded to the
permanent generation (`gc.freeze`), so that collections walk only what the execution makes
from then on, and makes young collections rarer; on leaving it puts both back as they were.

`loading()` keeps the collector off while a runner loads what it will hold (the manifests,
the registry, the recorded jobs): everything made then is alive at the end, and the
collections that came every 700 allocations walked a heap growing to millions of objects
for nothing: a third of the start of a daemon holding 1,000 jobs of 100 targets.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 10_000
"""Allocations between young collections (CPython: 700). Each young collection walks the
objects made since the last; at 700 most of a turn's short-lived objects are still alive
when it comes, and are walked in vain."""


class _Frozen:
    """Blocks inside `long_lived` now, and the thresholds to put back after the last."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.saved = gc.get_threshold()


_frozen = _Frozen()


@contextmanager
def long_lived() -> Iterator[None]:
    """Freeze what is alive now for the time of the block. Blocks may overlap (a daemon and
    a wait in tests, in two threads): the first to enter freezes, the last to leave thaws."""
    with _frozen.lock:
        _frozen.depth += 1
        if _frozen.depth == 1:
            _frozen.saved = saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(max(YOUNG_THRESHOLD, saved[0]), saved[1], saved[2])
    try:
        yield
    finally:
        with _frozen.lock:
            _frozen.depth -= 1
            if _frozen.depth == 0:
                gc.set_threshold(*_frozen.saved)
                gc.unfreeze()  # back to the oldest generation: collected again as usual


class _Loading:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.was_enabled = True


_loading = _Loading()


@contextmanager
def loading() -> Iterator[None]:
    """No collection for the time of the block (loading what lives on); blocks may overlap,
    the last to leave puts the collector back as the first found it."""
    with _loading.lock:
        _loading.depth += 1
        if _loading.depth == 1:
            _loading.was_enabled = gc.isenabled()
            gc.disable()
    try:
        yield
    finally:
        with _loading.lock:
            _loading.depth -= 1
            if _loading.depth == 0 and _loading.was_enabled:
                gc.enable()
