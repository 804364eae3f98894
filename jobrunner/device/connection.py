"""The runner's MQTT session: connect, subscribe per account, reconnect and resubscribe.
With pahoclient.py (paho's client, cheaper per message), the only modules of the runner
that import paho.

One paho client (callback API v2) with its own network thread (`loop_start`), a persistent
session (the broker queues the QoS 1 BIRTH, DC and LWT published while the runner is away,
and its CONNACK says whether it kept the session: when it did not, a restart of the broker
most likely reconnected every device unheard, see `session_kept`), TCP_NODELAY, and paho's
automatic reconnection. After every CONNACK the session
subscribes the reply, notification and lifecycle filters of each account it serves; an
account is usable (`subscribed`) only once its SUBACK came back on the current connection,
so nothing is ever sent before its reply can be received.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from jobrunner.device.jsoncodec import JsonCodec
from jobrunner.device.model import PayloadCodec
from jobrunner.device.pahoclient import Client, Deliver
from jobrunner.device.payload import ProtobufCodec
from jobrunner.device.settings import BrokerSettings
from jobrunner.device.topics import lifecycle_filter, notify_filter, reply_filter
from jobrunner.errors import ConnectError, DeviceError

log = logging.getLogger(__name__)

SUBSCRIBE_QOS = 1  # BIRTH and APPS are published at QoS 1; replies arrive at the QoS sent (0)
OnConnection = Callable[[bool, str], None]

CODECS: dict[str, Callable[[], PayloadCodec]] = {
    "kura-protobuf": ProtobufCodec,
    "simple-json": JsonCodec,
}


def codec_named(name: str) -> PayloadCodec:
    """The payload codec of a scope's `payload.encoding` name."""
    try:
        return CODECS[name]()
    except KeyError:
        raise DeviceError(
            f"unknown payload encoding {name!r}; use one of {', '.join(CODECS)}"
        ) from None


_WAKE = b"0"  # what paho writes to its socket pair to wake its network thread


class Session:
    """The MQTT session of the runner; `codecs` (account -> codec) is shared with the client;
    every message received goes to `deliver`, on paho's network thread."""

    def __init__(
        self,
        settings: BrokerSettings,
        codecs: dict[str, PayloadCodec],
        deliver: Deliver,
        on_connection: OnConnection,
    ) -> None:
        self.settings = settings
        self.url = settings.url
        self._codecs = codecs
        self._on_connection = on_connection
        self._state = threading.Condition()  # an RLock: `connected` is read with it held
        self._subscribed: set[str] = set()  # accounts whose SUBACK came on this connection
        self._suback_mids: dict[int, str] = {}
        self._connected = False
        self._announced = False  # connection(True) reported for this connection
        self._ever_connected = False
        self._failure: str | None = None
        self._stopping = False
        self._retry = threading.Event()  # set by stop(): ends the backoff of a first connect
        self._starting = threading.Lock()  # a network thread is started, or all are stopped
        self._down_since: float | None = None
        self._deferring = threading.Lock()  # held by the thread in `publishing`
        self.session_kept = True
        """Whether the broker kept the runner's session on the last connection (it queued
        what was published for the runner meanwhile); False after a broker restart."""
        self.mqtt = self._paho(deliver)

    @property
    def connected(self) -> bool:
        """Connected, and subscribed for every account."""
        with self._state:
            return self._connected and self._codecs.keys() <= self._subscribed

    def subscribed(self, account: str) -> bool:
        """Whether requests to `account` can be sent (and their replies received)."""
        return account in self._subscribed

    def down_reason(self) -> str:
        return self._failure or ("subscribing" if self._connected else "reconnecting")

    def start(self, timeout: float) -> None:
        """Connect and wait for the CONNACK and every SUBACK; ConnectError otherwise."""
        deadline = time.monotonic() + timeout
        self._stopping = False
        self._failure = None
        self._ever_connected = False
        self.mqtt.connect_timeout = timeout
        try:
            self.mqtt.connect(self.settings.host, self.settings.port, self.settings.keepalive)
        except (OSError, ValueError) as error:
            raise ConnectError(
                f"cannot connect to the broker {self.url}: {_reason(error)}"
            ) from None
        self.mqtt.loop_start()
        with self._state:
            ready = self._state.wait_for(
                lambda: self._failure is not None or self.connected,
                max(0.0, deadline - time.monotonic()),
            )
            failure = self._failure
        if failure is None and ready:
            return
        self.stop()
        if failure is not None:
            raise ConnectError(f"broker {self.url}: {failure}")
        raise ConnectError(
            f"broker {self.url} accepted the TCP connection but did not acknowledge the"
            f" connection and subscriptions within {timeout:g}s"
        )

    def start_in_background(self, first_delay: float = 1.0, max_delay: float = 30.0) -> None:
        """Connect without waiting: a broker that is down or late is tried again with
        backoff (every attempt logged with its reason) until it answers or `stop()`; once
        connected, paho's own reconnection takes over. `connection(True)` is reported when
        the subscriptions are in place."""
        self._stopping = False
        self._failure = None
        self._ever_connected = False
        self._retry = threading.Event()
        thread = threading.Thread(
            target=self._connect_with_backoff,
            args=(first_delay, max_delay),
            name="mqtt-connect",
            daemon=True,
        )
        thread.start()

    def _connect_with_backoff(self, delay: float, max_delay: float) -> None:
        attempt = 1
        while not self._stopping:
            try:
                self.mqtt.connect(self.settings.host, self.settings.port, self.settings.keepalive)
            except (OSError, ValueError) as error:
                log.warning(
                    "cannot reach the broker %s (attempt %d): %s; trying again in %gs",
                    self.url,
                    attempt,
                    _reason(error),
                    delay,
                )
                if self._retry.wait(delay):
                    return  # stopped meanwhile
                delay, attempt = min(delay * 2, max_delay), attempt + 1
                continue
            if attempt > 1:
                log.info("the broker %s answers (attempt %d); connecting", self.url, attempt)
            with self._starting:  # never a network thread started after stop() ended them
                if self._stopping:  # stop() came while connecting
                    self.mqtt.disconnect()
                    return
                self.mqtt.loop_start()
            return

    def publish(self, topic: str, data: bytes) -> str | None:
        """Publish at QoS 0, not retained; None when paho took it, else why not."""
        rc = self.mqtt.publish_at_most_once(topic, data)
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        return mqtt.error_string(rc)

    @contextlib.contextmanager
    def publishing(self) -> Iterator[None]:
        """Publications of this thread inside are written by paho's network thread together,
        once the block ends (woken once, not once each). Nested, or while another thread
        defers: publications go as usual."""
        client = self.mqtt
        if not self._deferring.acquire(blocking=False):
            yield
            return
        client._deferring = threading.get_ident()
        try:
            yield
        finally:
            client._deferring = None
            self._deferring.release()
            wake = client._wake
            if wake is not None:
                with contextlib.suppress(OSError):  # full (a wake-up is pending), or closed
                    wake.send(_WAKE)

    def stop(self) -> None:
        self._stopping = True
        self._retry.set()
        with self._starting:
            self.mqtt.disconnect()
            self.mqtt.loop_stop()
            # paho closes the socket pair that wakes its network thread only when the client
            # is collected; a runner that stops and a test that makes many close it now.
            self.mqtt._reset_sockets(sockpair_only=True)

    def add_account(self, account: str, codec: PayloadCodec, timeout: float) -> None:
        """Serve `account`; when connected, subscribe and wait for the SUBACK."""
        with self._state:
            self._codecs[account] = codec
            if not self._connected:
                return
            self._subscribe(account)
            done = self._state.wait_for(
                lambda: account in self._subscribed or self._failure is not None, timeout
            )
            failure = self._failure
        if failure is not None:
            raise ConnectError(f"broker {self.url}: {failure}")
        if not done and self._connected:
            raise ConnectError(
                f"broker {self.url} did not acknowledge the subscriptions of account {account}"
                f" within {timeout:g}s"
            )

    def remove_account(self, account: str) -> None:
        with self._state:
            if self._codecs.pop(account, None) is None:
                return
            self._subscribed.discard(account)
            if self._connected:
                self.mqtt.unsubscribe(list(self._filters(account)))

    # -- paho (network thread) -------------------------------------------------------------

    def _paho(self, deliver: Deliver) -> Client:
        settings = self.settings
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            clean_session=settings.clean_session,
            protocol=MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=True,
        )
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        if settings.username:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls:
            try:
                client.tls_set(
                    ca_certs=str(settings.ca_file) if settings.ca_file else None,
                    certfile=str(settings.cert_file) if settings.cert_file else None,
                    keyfile=str(settings.key_file) if settings.key_file else None,
                )
            except (OSError, ValueError) as error:
                raise ConnectError(
                    f"cannot use the TLS files for {self.url}: {_reason(error)}"
                ) from None
        client.on_socket_open = _no_delay
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.deliver = deliver
        # What paho reads itself (QoS 2) comes as its MQTTMessage, which reads the same.
        client.on_message = lambda _client, _userdata, message: deliver(message)
        return client

    def _filters(self, account: str) -> tuple[str, str, str]:
        me = self.settings.requester
        return reply_filter(account, me), notify_filter(account, me), lifecycle_filter(account)

    def _subscribe(self, account: str) -> None:
        """Subscribe `account`'s filters (state lock held, so the SUBACK waits for the mid)."""
        result, mid = self.mqtt.subscribe([(f, SUBSCRIBE_QOS) for f in self._filters(account)])
        if result == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
            self._suback_mids[mid] = account

    def _on_connect(
        self, _client: mqtt.Client, _userdata: Any, flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        with self._state:
            if reason.is_failure:
                self._failure = f"the broker refused the connection: {reason}"
                self._state.notify_all()
                log.warning("broker %s refused the connection: %s", self.url, reason)
                return
            self._connected = True
            self._ever_connected = True
            self.session_kept = bool(getattr(flags, "session_present", False))
            self._failure = None
            self._subscribed.clear()
            self._suback_mids.clear()
            for account in self._codecs:
                self._subscribe(account)
            announce = self._ready_to_announce()
        if announce:
            self._announce()

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, codes: list[ReasonCode], _p: Any
    ) -> None:
        with self._state:
            account = self._suback_mids.pop(mid, None)
            if account is None or account not in self._codecs:
                return
            filters = self._filters(account)
            refused = [f for f, code in zip(filters, codes, strict=False) if code.is_failure]
            if refused:
                self._failure = (
                    f"the broker refused the subscription to {', '.join(refused)}; check that"
                    f" its ACL lets client {self.settings.client_id} subscribe there"
                )
                log.error("broker %s: %s", self.url, self._failure)
            else:
                self._subscribed.add(account)
            self._state.notify_all()
            announce = self._ready_to_announce()
        if announce:
            self._announce()

    def _announce(self) -> None:
        """Connected and subscribed: say so (with how long the connection was down)."""
        down, self._down_since = self._down_since, None
        if down is None:
            reason = f"connected to {self.url}"
            log.info("%s; subscribed for %s", reason, ", ".join(sorted(self._codecs)))
        else:
            reason = f"reconnected to {self.url} after {time.monotonic() - down:.0f}s"
            log.warning("%s; dispatching resumes", reason)
        self._report(True, reason)

    def _ready_to_announce(self) -> bool:
        """True once per connection, when every account is subscribed (state lock held)."""
        if self._announced or not self.connected:
            return False
        self._announced = True
        return True

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _p: Any
    ) -> None:
        with self._state:
            was_connected, self._connected = self._connected, False
            self._subscribed.clear()
            if not self._ever_connected and self._failure is None:
                self._failure = f"the broker closed the connection before accepting it ({reason})"
            self._state.notify_all()
            announced, self._announced = self._announced, False
        if self._stopping:
            why = "the client stopped"
        else:
            why = f"connection to {self.url} lost ({reason}); reconnecting"
            if was_connected:
                log.warning("%s", why)
                if self._down_since is None:
                    self._down_since = time.monotonic()
        if announced:
            self._report(False, why)

    def _report(self, connected: bool, reason: str) -> None:
        try:
            self._on_connection(connected, reason)
        except Exception:  # never into paho's thread
            log.exception("the device event handler failed on a connection change")


def _no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    """TCP_NODELAY: without it, Nagle and delayed ACKs stall request/reply (PERFORMANCE-NOTES)."""
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not a TCP socket
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
