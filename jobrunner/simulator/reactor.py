"""One network thread for every MQTT client of a fleet, through paho's external-loop API.

paho's own `loop_start()` gives each client a thread that wakes once per incoming packet
and once more (through a socket pair) for every publish from a callback. For a fleet that
answers thousands of requests a second that is most of its CPU. Here one thread waits on
all sockets at once (`selectors`), reads every packet a readable socket holds
(`loop_read`), and writes what the callbacks published in one pass (`loop_write`); other
threads (the fleet's timer) publish without touching sockets, and wake the thread when
they do. Connecting, reconnecting and closing happen on this thread too.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from jobrunner.simulator.timer import Timer

log = logging.getLogger(__name__)

_READS_PER_TURN = 256
"""Packets read from one socket before the others get a turn."""
_DRAIN_SECONDS = 0.5
"""How long a clean close waits for the broker to close its side."""
_TICK = 1.0
"""Seconds between keepalive checks (`loop_misc`) of every client."""


class Reactor:
    """Drives attached paho clients from one daemon thread."""

    def __init__(self, timer: Timer, name: str = "jobrunner-sim-mqtt") -> None:
        self._timer = timer
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._woken = False
        self._calls: deque[Callable[[], None]] = deque()
        self._writes: deque[mqtt.Client] = deque()
        self._open: set[mqtt.Client] = set()
        self._closing: set[mqtt.Client] = set()
        """Clients disconnecting cleanly: their socket is drained before it is closed."""
        self._blocked: set[mqtt.Client] = set()
        """Clients with queued packets, waiting for their socket to be writable."""
        self._closed = threading.Condition()
        self.handled = 0
        """Messages delivered to callbacks; tells a drained socket from a busy one."""
        self._running = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # --- any thread ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the network thread."""
        self._running = True
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the network thread (close the clients first)."""
        self._running = False
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def attach(self, client: mqtt.Client) -> None:
        """Drive `client` from now on (it must have had `connect_async()`)."""
        client.on_socket_open = self._opened
        client.on_socket_close = self._closed_socket
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = None

    def call_soon(self, function: Callable[[], None]) -> None:
        """Run `function` on the network thread."""
        self._calls.append(function)
        self._wake()

    def connect(self, client: mqtt.Client, delay: float = 0.0) -> None:
        """(Re)connect `client` on the network thread, `delay` seconds from now."""
        if delay > 0:
            self._timer.call_later(delay, lambda: self.connect(client), "reconnect")
        else:
            self.call_soon(lambda: self._connect(client))

    def drop(self, client: mqtt.Client) -> None:
        """End the connection without a DISCONNECT packet (the broker publishes the will)."""

        def shutdown() -> None:
            sock = client.socket()
            if isinstance(sock, socket.socket):  # ssl.SSLSocket is one too
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        self.call_soon(shutdown)

    def close(self, client: mqtt.Client) -> None:
        """Disconnect cleanly: DISCONNECT after everything queued, then a graceful close."""
        self._closing.add(client)
        client.disconnect()

    def wait_closed(self, timeout: float) -> bool:
        """Wait until no attached client has an open socket."""
        deadline = time.monotonic() + timeout
        with self._closed:
            while self._open:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._closed.wait(min(remaining, 0.1))
        return True

    def _wake(self) -> None:
        if not self._woken:
            self._woken = True
            with contextlib.suppress(BlockingIOError, OSError):
                self._wake_w.send(b"\0")

    # --- paho's socket callbacks ------------------------------------------------------------

    def _opened(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._selector.register(sock, selectors.EVENT_READ, client)
        self._closing.discard(client)
        with self._closed:
            self._open.add(client)

    def _closed_socket(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        if client in self._closing:
            self._closing.discard(client)
            _drain(sock)
        self._blocked.discard(client)
        with self._closed:
            self._open.discard(client)
            self._closed.notify_all()

    def _want_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._writes.append(client)
        if threading.current_thread() is not self._thread:
            self._wake()

    # --- the network thread -----------------------------------------------------------------

    def _connect(self, client: mqtt.Client) -> None:
        if client.is_connected():
            return
        if client.socket() is not None:  # still connecting, or closing: look again soon
            self.connect(client, 0.2)
            return
        try:
            client.reconnect()
        except OSError as error:
            log.debug("simulator connection failed, retrying in 1s: %s", error)
            self.connect(client, 1.0)

    def _run(self) -> None:
        next_tick = time.monotonic() + _TICK
        while self._running:
            timeout = 0.0 if self._calls else max(next_tick - time.monotonic(), 0.0)
            writable: set[mqtt.Client] = set()
            for key, mask in self._selector.select(timeout):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        self._wake_r.recv(4096)
                    self._woken = False
                    continue
                if mask & selectors.EVENT_READ:
                    self._guarded(self._read, key.data, key.fileobj)
                if mask & selectors.EVENT_WRITE:
                    writable.add(key.data)
            while self._calls:
                try:
                    self._calls.popleft()()
                except Exception:
                    log.exception("simulator network call failed")
            while self._writes:
                writable.add(self._writes.popleft())
            for client in writable:
                self._guarded(self._write, client)
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + _TICK
                for client in list(self._open):
                    self._guarded(client.loop_misc)
                    if client.want_write():
                        self._guarded(self._write, client)

    @staticmethod
    def _guarded(function: Callable[..., Any], *args: Any) -> None:
        # One client's trouble (a bug in a callback, a socket error paho did not expect)
        # must not end the thread that serves all the others.
        try:
            function(*args)
        except Exception:
            log.exception(
                "simulator network thread: %s failed", getattr(function, "__name__", function)
            )

    def _read(self, client: mqtt.Client, sock: Any) -> None:
        for _ in range(_READS_PER_TURN):
            before = self.handled
            if client.loop_read() != mqtt.MQTT_ERR_SUCCESS or self.handled == before:
                break
        if getattr(sock, "pending", None) and sock.pending():  # TLS bytes already decrypted
            self._calls.append(lambda: self._read(client, sock))

    def _write(self, client: mqtt.Client) -> None:
        """Write what the client queued; wait for the socket to take more if it is full."""
        sock = client.socket()
        if sock is None:
            return
        client.loop_write()
        more = client.want_write() and client.socket() is sock
        if more != (client in self._blocked):
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if more else 0)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.modify(sock, events, client)
            if more:
                self._blocked.add(client)
            else:
                self._blocked.discard(client)


def _drain(sock: Any) -> None:
    """Read until the broker closes its side, so that closing ours sends FIN, not RST.

    A socket closed with unread data in it (here: echoes of the device's own DC, which
    its subscription matches) is reset, and a reset makes the broker drop what it has not
    read yet: the DC itself.
    """
    with contextlib.suppress(OSError, ValueError):
        sock.settimeout(_DRAIN_SECONDS)
        while sock.recv(65536):
            pass
