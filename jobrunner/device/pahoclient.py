"""paho's client, with its per-message work cut where the runner's traffic pays it: a
request published without a condition variable, publications of a turn written together,
and what the broker sends read many packets to a system call.

paho 2.2 reads a packet with three `recv` calls or more (its first byte, each byte of its
length, the rest) and one pass of its network loop (`select`, keepalive check) per packet; it
makes an `MQTTMessage` for each PUBLISH it receives, with an `MQTTMessageInfo` and its
`threading.Condition`, then looks for per-topic callbacks under two locks. Here the socket is
read up to `READ_SIZE` bytes at a time; every whole QoS 0 or QoS 1 PUBLISH of MQTT 3.1.1 in
what was read goes to `deliver` as a `Received` (its topic and payload), then, at QoS 1,
paho's own PUBACK is queued, as paho does after its `on_message`. Anything else (CONNACK,
SUBACK, PINGRESP, QoS 2, a packet cut by the end of what was read, a PUBLISH that does not
read right) goes through paho's own code, which reads the same bytes from the buffer:
so its protocol handling, its errors and its reconnections are paho's. The buffer is
dropped whenever paho closes the socket, so nothing read on one connection is ever taken
for the next one's.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion

from jobrunner.device.handover import Message

_MAX_PAYLOAD = 268_435_455  # MQTT's largest remaining length, as paho checks it
_MAX_TOPIC = 65_535
_PUBLISH = 0x30
_PUBLISH_QOS_0 = b"\x30"
_DISCONNECT = 0xE0
WRITE_SIZE = 65_536
"""Bytes of queued packets written by one `send` at most."""
READ_SIZE = 65_536
"""Bytes asked of the socket at a time (a reply is about 100 bytes; a BIRTH about 1 KB)."""
MAX_READS = 8
"""`recv` calls per pass of paho's loop at most: then what was read is handled, and paho
writes what waits and checks its keepalive before it reads again (a flood of BIRTHs never
keeps it from writing the runner's requests)."""


class Received:
    """A PUBLISH received: its topic and payload (what `handover.Message` reads)."""

    __slots__ = ("payload", "topic")

    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic = topic
        self.payload = payload


class ReceivedBadTopic:
    """A PUBLISH whose topic is not UTF-8: reading `topic` raises, as paho's message does;
    `_topic` holds its bytes, as in paho's message."""

    __slots__ = ("_topic", "payload")

    def __init__(self, topic: bytes, payload: bytes) -> None:
        self._topic = topic
        self.payload = payload

    @property
    def topic(self) -> str:
        return self._topic.decode("utf-8")


Deliver = Callable[[Message], None]


class Sent(mqtt.MQTTMessageInfo):
    """A QoS 0 publication's info, which paho marks published once written: without the
    `threading.Condition` of its own class, made at every publication for a wait that
    nobody does on a request (it cost as much as encoding the request)."""

    __slots__ = ()

    def __init__(self, mid: int) -> None:  # no super().__init__(): no condition to make
        self.mid = mid
        self._published = False
        self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        self._iterpos = 0

    def _set_as_published(self) -> None:
        self._published = True

    def is_published(self) -> bool:
        return self._published

    def wait_for_publish(self, timeout: float | None = None) -> None:
        raise NotImplementedError("nothing waits for a request to be written")


class Client(mqtt.Client):
    """paho's client, whose publications from one thread can be queued without waking the
    network thread for each (`Session.publishing`), and which reads what the broker sends
    in blocks (module docstring).

    paho writes a byte to a socket pair at every publication, so that its network thread
    leaves `select` and writes the packet: from another thread, one system call and one
    turn of that thread (with the interpreter lock handed over twice) per request. While a
    thread defers, paho sees no socket pair from that thread only, and queues the packets;
    the byte is written once when the batch ends, and the network thread writes them all.
    """

    _deferring: int | None = None
    """The thread whose publications are queued without a wake-up (None: none)."""
    _wake: socket.socket | None = None
    deliver: Deliver | None = None
    """Where a PUBLISH read whole goes (None: paho's `on_message`, with its MQTTMessage)."""
    _in_buffer = b""
    _in_at = 0  # how much of `_in_buffer` was handled
    _reads_left = 0  # `recv` calls this pass of the loop may still make

    # -- publishing ----------------------------------------------------------------------

    def publish_at_most_once(self, topic: str, payload: bytes) -> MQTTErrorCode:
        """`publish(topic, payload, 0, False)`: the same checks, the same packet queued the
        same way, without the condition variable paho makes for each publication (for its
        `wait_for_publish`, which nobody calls on a request). The wildcards are looked for
        in the text: `b"+" in topic` first tries `b"+"` as an integer, and raises and
        formats a TypeError inside, twice a request (no byte of a character beyond ASCII
        is `+` or `#` in UTF-8, so the answer is the same)."""
        if "+" in topic or "#" in topic:
            raise ValueError("Publish topic cannot contain wildcards.")
        topic_bytes = topic.encode("utf-8")
        if len(topic_bytes) > _MAX_TOPIC:
            raise ValueError("Publish topic is too long.")
        if len(payload) > _MAX_PAYLOAD:
            raise ValueError("Payload too large.")
        mid = self._mid_generate()
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        if self._logger is not None or self._on_log is not None:
            self._easy_log(
                mqtt.MQTT_LOG_DEBUG,
                "Sending PUBLISH (d0, q0, r0, m%d), '%s', ... (%d bytes)",
                mid,
                topic_bytes,
                len(payload),
            )
        # paho's `_send_publish` at QoS 0, MQTT 3.1.1, without its bytearray built a piece at
        # a time: the fixed header, the topic's length and the topic, the payload.
        packet = b"".join(
            (
                _PUBLISH_QOS_0,
                _remaining_bytes(2 + len(topic_bytes) + len(payload)),
                len(topic_bytes).to_bytes(2, "big"),
                topic_bytes,
                payload,
            )
        )
        return self._packet_queue(_PUBLISH, packet, mid, 0, Sent(mid))

    @property
    def _sockpairW(self) -> socket.socket | None:  # noqa: N802 - paho's name
        return None if self._deferring == threading.get_ident() else self._wake

    @_sockpairW.setter
    def _sockpairW(self, value: socket.socket | None) -> None:  # noqa: N802
        self._wake = value

    def _packet_write(self) -> MQTTErrorCode:
        """paho's `_packet_write`, but what waits in the queue (a turn's requests) is written
        by one `send` up to WRITE_SIZE bytes, not one `send` a packet. A DISCONNECT, which
        ends the connection once written, is paho's to write."""
        if self._on_publish is not None:  # paho calls it for each publication written
            return super()._packet_write()
        out = self._out_packet
        while out:
            rc = self._write_together(out)
            if rc is not None:
                return rc
        with self._msgtime_mutex:
            self._last_msg_out = mqtt.time_func()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _write_together(self, out: Any) -> MQTTErrorCode | None:
        """Write the packets at the head of `out` at once; None when all were written."""
        batch, parts, size = [], [], 0
        while out and size < WRITE_SIZE:
            packet = out[0]
            if packet["command"] & 0xF0 == _DISCONNECT:
                break
            batch.append(out.popleft())  # only this thread takes packets out
            part = packet["packet"][packet["pos"] :] if packet["pos"] else packet["packet"]
            parts.append(part)
            size += len(part)
        if not batch:
            return super()._packet_write()
        try:
            written = self._sock_send(parts[0] if len(parts) == 1 else b"".join(parts))
        except (AttributeError, ValueError):
            out.extendleft(reversed(batch))
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        except BlockingIOError:
            out.extendleft(reversed(batch))
            return MQTTErrorCode.MQTT_ERR_AGAIN
        except OSError as error:
            out.extendleft(reversed(batch))
            self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", error)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if written <= 0:  # as paho: stop writing for this pass
            out.extendleft(reversed(batch))
            with self._msgtime_mutex:
                self._last_msg_out = mqtt.time_func()
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        for index, packet in enumerate(batch):
            length = packet["to_process"]
            if written < length:  # the socket is full: the rest waits, as in paho
                packet["pos"] += written
                packet["to_process"] -= written
                out.extendleft(reversed(batch[index:]))
                return MQTTErrorCode.MQTT_ERR_AGAIN
            written -= length
            packet["pos"] += length
            packet["to_process"] = 0
            if packet["command"] & 0xF0 == _PUBLISH and packet["qos"] == 0:
                info = packet["info"]
                if info is not None:
                    info._set_as_published()
        return None

    # -- receiving -----------------------------------------------------------------------

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """paho's `loop_read`, for every packet read by up to MAX_READS `recv` calls, not
        one packet a call. It returns with nothing left in the buffer, so that paho's
        `select` waits only when the socket has nothing more."""
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        self._reads_left = MAX_READS
        while True:
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN or self._in_at >= len(self._in_buffer):
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN

    def _packet_read(self) -> MQTTErrorCode:
        """A whole QoS 0 or 1 PUBLISH waiting in the buffer is read here; anything else, or
        a packet that is not whole yet, by paho (which reads the buffer through
        `_sock_recv`)."""
        deliver = self.deliver
        if self._in_packet["command"] or deliver is None or self._protocol == MQTTv5:
            return super()._packet_read()
        at = self._in_at
        buffer = self._in_buffer
        if at >= len(buffer):
            try:
                if not self._fill():
                    return MQTTErrorCode.MQTT_ERR_CONN_LOST  # closed by the broker
            except BlockingIOError:
                return MQTTErrorCode.MQTT_ERR_AGAIN
            except OSError as error:  # as paho reads a packet's first byte
                self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", error)
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            at, buffer = 0, self._in_buffer
        header = buffer[at]
        qos = (header & 0x06) >> 1
        if header & 0xF0 != _PUBLISH or qos > 1:
            return super()._packet_read()
        found = _remaining_length(buffer, at + 1)
        if found is None:
            return super()._packet_read()  # cut by the end of the buffer, or malformed
        start, length = found
        end = len(buffer)
        stop = start + length
        if stop > end or length < 2:
            return super()._packet_read()
        topic_end = start + 2 + (buffer[start] << 8 | buffer[start + 1])
        payload_at = topic_end + 2 if qos else topic_end
        if topic_end == start + 2 or payload_at > stop:
            return super()._packet_read()  # empty topic, or longer than the packet: paho's error
        self._in_at = stop
        raw_topic = buffer[start + 2 : topic_end]
        try:
            message: Received | ReceivedBadTopic = Received(
                raw_topic.decode("utf-8"), buffer[payload_at:stop]
            )
        except UnicodeDecodeError:
            message = ReceivedBadTopic(raw_topic, buffer[payload_at:stop])
        deliver(message)
        if qos and not self._manual_ack:
            return self._send_puback(buffer[topic_end] << 8 | buffer[topic_end + 1])
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _fill(self) -> bool:
        """Read what the socket holds into the buffer; False when the connection was
        closed (BlockingIOError: nothing to read, or no more reads this pass)."""
        if self._reads_left <= 0:
            raise BlockingIOError
        self._reads_left -= 1
        data = super()._sock_recv(READ_SIZE)
        if not data:
            return False
        self._in_buffer, self._in_at = data, 0
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        return True

    def _sock_recv(self, bufsize: int) -> bytes:
        """What paho reads, taken from the buffer first."""
        at, buffer = self._in_at, self._in_buffer
        if at >= len(buffer):
            if self._reads_left <= 0:
                raise BlockingIOError
            self._reads_left -= 1
            data = super()._sock_recv(max(bufsize, READ_SIZE))
            if len(data) <= bufsize:
                return data
            self._in_buffer, self._in_at = data, bufsize
            return data[:bufsize]
        self._in_at = at + bufsize
        return buffer[at : at + bufsize]

    def _sock_close(self) -> None:
        self._in_buffer, self._in_at = b"", 0  # never read on the next connection
        super()._sock_close()


def _remaining_bytes(length: int) -> bytes:
    """A packet's remaining length as MQTT writes it (seven bits a byte, low bits first)."""
    if length < 0x80:
        return bytes((length,))
    out = bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


def _remaining_length(buffer: bytes, at: int) -> tuple[int, int] | None:
    """Where a packet's variable part starts, and its length (seven bits a byte, at most
    four bytes, from `at`); None when the buffer ends first or the length is malformed."""
    length, shift, end = 0, 0, len(buffer)
    while at < end and shift <= 21:
        byte = buffer[at]
        at += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return at, length
        shift += 7
    return None


MQTTv5 = MQTTProtocolVersion.MQTTv5
