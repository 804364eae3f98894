"""The engine's inbox: replies and notifications are taken before a flood of BIRTHs already
waiting, and every other event keeps its order (a command still comes after what was put
before it)."""

from __future__ import annotations

import threading

from jobrunner.device.payload import KuraPayload
from jobrunner.engine.link.events import (
    Command,
    ConnectionChanged,
    DeviceConnected,
    DeviceDisconnected,
    Event,
    Inbox,
    NotificationArrived,
    ReplyArrived,
)
from jobrunner.engine.link.ports import Tag

REPLY = ReplyArrived(Tag(("acme", "job"), "gw-7", 0, "r-1"), KuraPayload())
NOTIFICATION = NotificationArrived("acme", "gw-8", "DEPLOY-V2", ("install",), 4, KuraPayload())


def births(count: int) -> list[Event]:
    return [DeviceConnected("acme", f"gw-{n}", None, float(n)) for n in range(count)]


def test_a_reply_is_taken_before_the_births_waiting_before_it() -> None:
    inbox = Inbox()
    flood = births(3000)
    for event in flood:
        inbox.put(event)
    inbox.put(REPLY)
    inbox.put(NOTIFICATION)

    first = inbox.take(0.0)
    assert first[:2] == [REPLY, NOTIFICATION]
    assert first[2:] == flood[:1998]  # the batch's limit counts the replies too
    assert inbox.take(0.0) == flood[1998:]


def test_other_events_keep_their_order_and_a_command_comes_after_what_was_before_it() -> None:
    inbox = Inbox()
    command = Command(lambda: None)
    ordered: list[Event] = [
        DeviceDisconnected("acme", "gw-1", "LWT", 1.0),
        ConnectionChanged(False, "lost"),
        DeviceConnected("acme", "gw-1", None, 2.0),
        command,
    ]
    for event in ordered[:3]:
        inbox.put(event)
    inbox.put(REPLY)
    inbox.put(command)
    assert inbox.take(0.0) == [REPLY, *ordered]


def test_an_empty_inbox_waits_for_the_first_event() -> None:
    inbox = Inbox()
    assert inbox.take(0.0) == []
    taken: list[list[Event]] = []
    taker = threading.Thread(target=lambda: taken.append(inbox.take(60.0)))
    taker.start()
    inbox.put(REPLY)  # wakes the taker long before its timeout
    taker.join(60.0)
    assert taken == [[REPLY]]
