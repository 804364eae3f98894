"""systemd's notify protocol: READY once the daemon serves, WATCHDOG while its loop turns.

One datagram to the socket in NOTIFY_SOCKET per message (sd_notify(3)); without it (not
run by systemd, or no `Type=notify` unit) every call does nothing. The watchdog is fed at
half the interval the unit asks for (WATCHDOG_USEC), from the engine loop itself: a loop
that hangs stops feeding it, and systemd restarts the daemon.
"""

from __future__ import annotations

import os
import socket

_last_fed = float("-inf")


def notify(message: str) -> bool:
    """Send `message` (`READY=1`, `STOPPING=1`...) to systemd; False when not under it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
    except OSError:
        return False  # systemd went away: nothing to tell
    return True


def watchdog(now: float) -> None:
    """Feed the watchdog when the unit has one and half its interval has passed (`now`:
    time.monotonic())."""
    global _last_fed  # noqa: PLW0603 - one watchdog per process
    interval = os.environ.get("WATCHDOG_USEC")
    if not interval or not interval.isdigit():
        return
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return  # meant for another process of the unit
    if now - _last_fed >= int(interval) / 2e6:
        _last_fed = now
        notify("WATCHDOG=1")
