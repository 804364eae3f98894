"""The device client against a real broker: requests, replies, expiry, the in-flight window.

The client keeps no clock: its caller (the engine) owns each request's deadline and ends one
that ran out of time with `expire`."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from jobrunner.device.client import DeviceClient
from jobrunner.device.jsoncodec import JsonCodec
from jobrunner.device.model import AnomalyKind, Request
from jobrunner.device.payload import Metric, MetricType
from jobrunner.errors import ClientBusyError, NotConnectedError
from jobrunner.simulator.broker import RunningBroker
from tests.device.conftest import WAIT, Received, Recorder, Responder, make_client, unique

pytestmark = pytest.mark.integration

PING = Request("CMD-V1", "EXEC", ("command",), {"command.command": Metric.string("true")})


def test_a_request_carries_the_kura_request_metrics_and_its_reply_comes_back(
    client: DeviceClient[str], responder: Responder, recorder: Recorder, account: str
) -> None:
    request_id = client.send((account, "gw-1"), PING, tag="t1")

    payload = recorder.reply_for(request_id)
    assert payload.integer("response.code") == 200
    pending = next(p for p, _ in recorder.replies if p.request_id == request_id)
    assert (pending.device, pending.app_id, pending.tag, pending.sent) == (
        (account, "gw-1"),
        "CMD-V1",
        "t1",
        True,
    )
    [got] = responder.wait_received(1)
    assert str(got.topic) == f"$EDC/{account}/gw-1/CMD-V1/EXEC/command"
    assert (got.qos, got.retain) == (0, False)  # QoS 0: a retransmit would run it twice
    metrics = got.payload.metrics
    assert metrics["request.id"] == Metric(MetricType.STRING, request_id)
    assert metrics["requester.client.id"] == Metric(MetricType.STRING, client.client_id)
    assert metrics["command.command"] == Metric(MetricType.STRING, "true")
    assert client.in_flight == 0
    assert recorder.anomalies == []


def test_start_returns_subscribed_and_reports_the_connection(
    client: DeviceClient[str], recorder: Recorder
) -> None:
    assert client.connected
    recorder.wait(lambda: recorder.connections[:1] == [(True, recorder.connections[0][1])], "up")
    assert recorder.connections[0][0] is True
    assert client.settings.url in recorder.connections[0][1]


def test_a_caller_chosen_request_id_is_used(
    client: DeviceClient[str], responder: Responder, recorder: Recorder, account: str
) -> None:
    chosen = client.new_request_id()
    assert client.send((account, "gw-1"), PING, "t", request_id=chosen) == chosen
    recorder.reply_for(chosen)


class _CountingWake:
    """paho's socket pair end that wakes its network thread, counting the wake-ups."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.wakes = 0

    def send(self, data: bytes) -> int:
        self.wakes += 1
        return int(self.real.send(data))

    def close(self) -> None:
        self.real.close()


def test_requests_sent_together_wake_the_network_thread_once_and_all_leave(
    client: DeviceClient[str], responder: Responder, recorder: Recorder, account: str
) -> None:
    paho = client._session.mqtt
    wake = paho._sockpairW = _CountingWake(paho._sockpairW)  # type: ignore[assignment]

    with client.sending():
        batch = [client.send((account, f"gw-{i}"), PING, tag=f"t{i}") for i in range(5)]
        assert wake.wakes == 0, "queued, not yet written"
    assert wake.wakes == 1
    alone = client.send((account, "gw-9"), PING, tag="alone")
    assert wake.wakes == 2, "outside a batch, a request wakes paho's thread itself"

    for request_id in [*batch, alone]:
        assert recorder.reply_for(request_id).integer("response.code") == 200
    assert sorted(r.topic.device for r in responder.wait_received(6)) == [
        *(f"gw-{i}" for i in range(5)),
        "gw-9",
    ]
    assert recorder.anomalies == []


def test_a_batch_of_another_thread_leaves_this_threads_requests_alone(
    client: DeviceClient[str], responder: Responder, recorder: Recorder, account: str
) -> None:
    paho = client._session.mqtt
    wake = paho._sockpairW = _CountingWake(paho._sockpairW)  # type: ignore[assignment]
    inside, go_on = threading.Event(), threading.Event()

    def batch() -> None:
        with client.sending():
            inside.set()
            go_on.wait(WAIT)

    other = threading.Thread(target=batch)
    other.start()
    assert inside.wait(WAIT)
    with client.sending():  # taken by the other thread: this one's requests go as usual
        request_id = client.send((account, "gw-1"), PING, tag="t")
        assert wake.wakes == 1
    go_on.set()
    other.join(WAIT)
    recorder.reply_for(request_id)


def test_a_dropped_reply_expires_once_and_others_are_not_disturbed(
    client: DeviceClient[str], responder: Responder, recorder: Recorder, account: str
) -> None:
    def drop_gw1(device: Responder, received: Received) -> None:
        if received.topic.device != "gw-1":
            device.answer(received)

    responder.behaviour = drop_gw1
    lost = client.send((account, "gw-1"), PING, tag="lost")
    responder.wait_received(1)
    answered = client.send((account, "gw-2"), PING, tag="ok")
    recorder.reply_for(answered)

    expired = client.expire(lost)
    assert expired is not None and expired.tag == "lost"
    assert client.expire(lost) is None, "a request ends once"
    assert client.expire(answered) is None, "an answered request cannot expire"
    assert client.in_flight == 0


def test_a_reply_after_the_timeout_is_an_anomaly_not_a_reply(
    client: DeviceClient[str], responder: Responder, recorder: Recorder, account: str
) -> None:
    responder.behaviour = Responder.hold
    late = client.send((account, "gw-1"), PING, tag="late")
    responder.wait_held(1)
    assert client.expire(late) is not None  # the caller's deadline passed
    responder.release()

    anomaly = recorder.anomaly_of(AnomalyKind.LATE_REPLY, late)
    assert f"/CMD-V1/REPLY/{late}" in anomaly.topic
    assert (
        "late: it arrived" in anomaly.message and "after the request timed out" in anomaly.message
    )
    assert anomaly.tag == "late", "the caller learns which of its requests it was"
    assert recorder.replies == []


def test_a_duplicate_reply_is_reported_once_as_an_anomaly(
    client: DeviceClient[str], responder: Responder, recorder: Recorder, account: str
) -> None:
    def twice(device: Responder, received: Received) -> None:
        device.answer(received)
        device.answer(received)

    responder.behaviour = twice
    request_id = client.send((account, "gw-1"), PING, "t")
    duplicate = recorder.anomaly_of(AnomalyKind.DUPLICATE_REPLY, request_id)
    assert "a second reply: the first one was taken" in duplicate.message
    assert duplicate.tag == "t"
    assert [p.request_id for p, _ in recorder.replies] == [request_id]


def test_a_reply_for_an_unknown_request_id_is_an_anomaly(
    client: DeviceClient[str], responder: Responder, recorder: Recorder, account: str
) -> None:
    topic = f"$EDC/{account}/{client.client_id}/CMD-V1/REPLY/no-such-id"
    responder.publish(topic, Responder.ok())
    anomaly = recorder.anomaly_of(AnomalyKind.UNKNOWN_REQUEST, "no-such-id")
    assert anomaly.topic == topic
    request_id = client.send((account, "gw-1"), PING, "t")
    recorder.reply_for(request_id)


def test_replies_from_another_account_or_app_are_ignored_until_the_right_one_comes(
    broker: RunningBroker, recorder: Recorder
) -> None:
    home, other = unique("home"), unique("other")
    client = make_client(broker, recorder, home, other)
    client.start(WAIT)
    responder = Responder(broker, (home,))
    responder.behaviour = Responder.hold
    responder.start()
    try:
        request_id = client.send((home, "gw-1"), PING, "t")
        responder.wait_held(1)
        [received] = responder.wait_received(1)
        responder.publish(Responder.reply_topic(received, account=other), Responder.ok())
        wrong_account = recorder.anomaly_of(AnomalyKind.WRONG_SENDER, f"account {other}")
        responder.publish(Responder.reply_topic(received, app="CONF-V1"), Responder.ok())
        recorder.anomaly_of(AnomalyKind.WRONG_SENDER, "app CONF-V1")
        assert recorder.replies == []
        responder.release()
        recorder.reply_for(request_id)
        assert wrong_account.device == (home, "gw-1")
        assert other in wrong_account.topic
    finally:
        responder.stop()
        client.stop()


def test_the_in_flight_window_is_bounded_and_frees_as_replies_arrive(
    broker: RunningBroker, recorder: Recorder, account: str
) -> None:
    client = make_client(broker, recorder, account, max_in_flight=3)
    client.start(WAIT)
    responder = Responder(broker, (account,), behaviour=Responder.hold).start()
    try:
        ids = [client.send((account, f"gw-{n}"), PING, "t") for n in range(3)]
        assert client.in_flight == 3
        with pytest.raises(ClientBusyError, match="3 requests are already in flight"):
            client.send((account, "gw-9"), PING, "t")
        assert not client.wait_for_capacity(0.05)
        responder.wait_held(3)
        responder.release(1)
        assert client.wait_for_capacity(WAIT)
        assert client.in_flight == 2
        client.send((account, "gw-9"), PING, "t")
        responder.wait_held(3)
        responder.release()
        recorder.wait(lambda: len(recorder.replies) == 4, "four replies")
        assert {p.request_id for p, _ in recorder.replies} >= set(ids)
        assert client.in_flight == 0
    finally:
        responder.stop()
        client.stop()


def test_sending_without_a_connection_fails_fast_and_sends_nothing(
    broker: RunningBroker, recorder: Recorder, account: str
) -> None:
    client = make_client(broker, recorder, account)
    with pytest.raises(NotConnectedError, match="not connected"):
        client.send((account, "gw-1"), PING, "t")
    client.start(WAIT)
    try:
        with pytest.raises(NotConnectedError, match="add_account first"):
            client.send(("not-served", "gw-1"), PING, "t")
        with pytest.raises(ValueError, match="topic segment"):
            client.send((account, "gw/1"), PING, "t")
    finally:
        client.stop()
    with pytest.raises(NotConnectedError):
        client.send((account, "gw-1"), PING, "t")
    assert client.in_flight == 0


def test_expect_rearms_a_request_sent_by_an_earlier_process(
    client: DeviceClient[str], responder: Responder, recorder: Recorder, account: str
) -> None:
    client.expect((account, "gw-1"), "old-42", app_id="DEPLOY-V2", tag="old")
    assert client.in_flight == 0  # not in the window: nothing of it is on the wire
    topic = f"$EDC/{account}/{client.client_id}/DEPLOY-V2/REPLY/old-42"
    responder.publish(topic, Responder.ok())
    recorder.reply_for("old-42")
    pending = recorder.replies[0][0]
    assert (pending.tag, pending.sent, pending.device) == ("old", False, (account, "gw-1"))


def test_a_rearmed_request_expires_like_any_other(
    client: DeviceClient[str], responder: Responder, recorder: Recorder, account: str
) -> None:
    client.expect((account, "gw-1"), "old-1", app_id="CMD-V1", tag="x")
    expired = client.expire("old-1")
    assert expired is not None and expired.sent is False
    responder.publish(f"$EDC/{account}/{client.client_id}/CMD-V1/REPLY/old-1", Responder.ok())
    assert "late:" in recorder.anomaly_of(AnomalyKind.LATE_REPLY, "old-1").message


def test_a_cancelled_request_does_not_count_its_reply(
    client: DeviceClient[str], responder: Responder, recorder: Recorder, account: str
) -> None:
    responder.behaviour = Responder.hold
    request_id = client.send((account, "gw-1"), PING, tag="t")
    assert client.cancel(request_id)
    assert not client.cancel(request_id)
    assert client.in_flight == 0
    responder.wait_held(1)
    responder.release()
    recorder.anomaly_of(AnomalyKind.LATE_REPLY, "after the request ended")
    assert recorder.replies == []


def test_a_failing_event_handler_does_not_stop_the_client(
    client: DeviceClient[str], responder: Responder, recorder: Recorder, account: str
) -> None:
    recorder.fail_next_reply = True
    first = client.send((account, "gw-1"), PING, "t")
    recorder.reply_for(first)
    second = client.send((account, "gw-1"), PING, "t")
    recorder.reply_for(second)


def test_an_account_can_speak_simple_json(broker: RunningBroker, recorder: Recorder) -> None:
    account = unique("json")
    client = make_client(broker, recorder)
    client.add_account(account, "simple-json")
    client.start(WAIT)
    responder = Responder(broker, (account,), codec=JsonCodec()).start()
    try:
        request_id = client.send((account, "gw-1"), PING, "t")
        assert recorder.reply_for(request_id).integer("response.code") == 200
        [received] = responder.wait_received(1)
        assert received.payload.string("request.id") == request_id
        assert received.payload.string("command.command") == "true"
    finally:
        responder.stop()
        client.stop()
