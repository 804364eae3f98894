"""The engine's deadlines: an entry cancelled by its key is never due, and not held."""

from __future__ import annotations

from jobrunner.engine.core.timers import Deadlines, GateDue, RetryPublish

from ..conftest import FakeClock


def test_a_cancelled_entry_is_never_due_and_the_next_one_sets_the_wait(clock: FakeClock) -> None:
    deadlines = Deadlines(clock, clock)
    deadlines.add(clock() + 5, GateDue(("acme", "first")), key="r-1")
    deadlines.add(clock() + 20, RetryPublish())

    deadlines.cancel("r-1")
    deadlines.cancel("r-1")  # twice, or a key never added: nothing
    deadlines.cancel("r-unknown")

    assert len(deadlines) == 1
    assert deadlines.wait(60) == 20  # not 5: the cancelled entry is no longer waited for
    clock.advance(30)
    assert deadlines.due() == [RetryPublish()]


def test_a_heap_of_cancelled_entries_is_rebuilt_with_what_is_awaited(clock: FakeClock) -> None:
    deadlines = Deadlines(clock, clock)
    for n in range(1000):
        deadlines.add(clock() + 30, GateDue(("acme", str(n))), key=f"r-{n}")
    for n in range(999):
        deadlines.cancel(f"r-{n}")

    assert len(deadlines) == 1
    assert len(deadlines._heap) < 100, "cancelled entries held until they would have come"
    clock.advance(31)
    assert deadlines.due() == [GateDue(("acme", "999"))]
    assert len(deadlines) == 0


def test_a_key_added_twice_leaves_both_entries_due_and_the_newest_cancellable(
    clock: FakeClock,
) -> None:
    deadlines = Deadlines(clock, clock)
    first, second = GateDue(("acme", "first")), GateDue(("acme", "second"))
    deadlines.add(clock() + 1, first, key="r-1")
    deadlines.add(clock() + 2, second, key="r-1")
    clock.advance(1)
    assert deadlines.due() == [first]
    deadlines.cancel("r-1")  # the newest one, still awaited
    clock.advance(5)
    assert deadlines.due() == [] and len(deadlines) == 0
