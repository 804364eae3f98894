"""Who is connected, asked after the broker lost the runner's session.

A broker that restarts without persistence forgets the runner's session: every device
reconnects and publishes its BIRTH, and those published before the runner subscribed again are
lost. The runner then asks each known device a cheap question (DEPLOY-V2 `GET packages`, in
the in-flight window beside the jobs' requests); a device that answers is connected, and counts
as (re)connected unless its BIRTH came meanwhile: the registry says so, and its device-connect
schedules fire.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from jobrunner.device.model import Request
from jobrunner.engine.core.runtime import Runtime, new_request_id
from jobrunner.engine.core.timers import ReplyDue
from jobrunner.engine.link.ports import Tag
from jobrunner.errors import NotSentError

PROBE = Request("DEPLOY-V2", "GET", ("packages",))
"""Answered by every Kura that runs DEPLOY-V2, whatever is installed; changes nothing."""

Device = tuple[str, str]  # (account, client id)


class Probes:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.waiting: deque[Device] = deque()
        self.asked: dict[str, Device] = {}  # request id -> device, until answered or due
        self.heard: set[Device] = set()
        """Devices whose BIRTH came since the probing began: nothing to ask them."""

    def ask(self, devices: Iterable[Device]) -> int:
        """Ask `devices` (those not asked yet); how many will be asked."""
        self.heard.clear()
        queued = set(self.waiting) | set(self.asked.values())
        fresh = [d for d in devices if d not in queued]
        self.waiting.extend(fresh)
        return len(fresh)

    def birth(self, device: Device) -> None:
        if self.waiting or self.asked:
            self.heard.add(device)

    def send(self, capacity: int) -> int:
        """Send probes within `capacity`; how many requests that took."""
        used = 0
        while self.waiting and used < capacity:
            device = self.waiting.popleft()
            if device in self.heard:
                continue
            tag = Tag((device[0], ""), device[1], 0, new_request_id(), "probe")
            try:
                self.rt.link.send(tag, PROBE)
            except NotSentError:
                continue  # not connected, or an account not served: nothing to learn there
            self.asked[tag.request_id] = device
            self.rt.deadlines.add(self.rt.clock() + self.rt.settings.query_timeout, ReplyDue(tag))
            used += 1
        if not self.waiting and not self.asked:
            self.heard.clear()
        return used

    def answered(self, tag: Tag) -> Device | None:
        """The device that answered, when it counts as found (no BIRTH of it came since)."""
        device = self.asked.pop(tag.request_id, None)
        if device is None or device in self.heard:
            return None
        return device

    def expired(self, tag: Tag) -> None:
        """No answer: the device is not connected (or runs no DEPLOY-V2); nothing learnt."""
        self.rt.link.expire(tag)
        self.asked.pop(tag.request_id, None)
