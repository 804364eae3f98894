"""Splitting a job's targets into the waves of its rollout, once, at the first execution.

Waves take targets in the order they are written, each from the targets no earlier wave took:
`devices` takes those listed, `tags` those carrying one of the tags, `size` a count or a share
of what is left in the order of a stable hash of the client id (SHA-256: the same devices
every time, on every machine, so that the plan in a pull request shows who goes first), and
the remainder wave all that is left. Targets that no wave took go in a last wave of their own;
a rollout without waves has none (its targets go together, under its rate and window).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable

from jobrunner.manifests.rollout import Wave
from jobrunner.state.records import FrozenWave

REMAINDER = "rest"


def stable_order(client_ids: Iterable[str]) -> list[str]:
    """Client ids in the order of the SHA-256 of each: stable, and spread over any naming."""
    return sorted(client_ids, key=lambda c: (hashlib.sha256(c.encode("utf-8")).digest(), c))


def split_waves(
    targets: Iterable[str], waves: list[Wave], tags_of: Callable[[str], Iterable[str]]
) -> list[FrozenWave]:
    """The waves' targets, in wave order; each list in stable-hash order (the start order)."""
    left = stable_order(set(targets))
    split: list[FrozenWave] = []
    for wave in waves:
        if wave.devices:
            listed = set(wave.devices)
            taken = [c for c in left if c in listed]
            selector = "devices"
        elif wave.tags:
            wanted = set(wave.tags)
            taken = [c for c in left if wanted.intersection(tags_of(c))]
            selector = "tags: " + ", ".join(wave.tags)
        elif wave.size is not None:
            taken = left[: wave_size(wave.size, len(left))]
            selector = f"size {wave.size}"
        else:
            taken, selector = list(left), "remainder"
        chosen = set(taken)
        left = [c for c in left if c not in chosen]
        split.append(FrozenWave(name=wave.name, targets=taken, selector=selector))
    if left and waves:
        names = {w.name for w in split}
        name = REMAINDER if REMAINDER not in names else _free_name(names)
        split.append(FrozenWave(name=name, targets=left, selector="remainder (implicit)"))
    return split


def wave_size(size: int | str, left: int) -> int:
    """How many of `left` targets a wave of `size` takes: a share is rounded up (a 1% canary
    of 50 targets is one device, not none)."""
    if isinstance(size, int):
        return min(size, left)
    share = float(size.rstrip("%"))
    return min(left, math.ceil(left * share / 100 - 1e-9))


def _free_name(names: set[str]) -> str:
    number = 2
    while f"{REMAINDER}-{number}" in names:
        number += 1
    return f"{REMAINDER}-{number}"
