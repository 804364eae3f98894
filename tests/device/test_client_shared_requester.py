"""Runners that share a requester id (several runners on one state database): a reply that
came while no runner awaited it (its runner died before its job was taken over) reaches the
runner that takes the request over, if it came by the request's deadline."""

from __future__ import annotations

import dataclasses
import time

import pytest

from jobrunner.device.client import DeviceClient
from jobrunner.device.model import Request
from jobrunner.device.payload import Metric
from jobrunner.device.settings import BrokerSettings
from jobrunner.simulator.broker import RunningBroker
from tests.device.conftest import WAIT, Recorder, Responder, unique

pytestmark = pytest.mark.integration

PING = Request("CMD-V1", "EXEC", ("command",), {"command.command": Metric.string("true")})


def _runner(
    broker: RunningBroker, recorder: Recorder, account: str, requester: str
) -> DeviceClient[str]:
    settings = BrokerSettings.from_url(broker.url, client_id=unique("runner"))
    client: DeviceClient[str] = DeviceClient(
        dataclasses.replace(settings, requester_id=requester), recorder
    )
    client.add_account(account)
    client.start(WAIT)
    return client


def test_a_reply_no_runner_awaited_reaches_the_runner_that_takes_its_request_over(
    broker: RunningBroker, account: str
) -> None:
    requester = unique("shared")
    taker_saw = Recorder()
    owner = _runner(broker, Recorder(), account, requester)
    taker = _runner(broker, taker_saw, account, requester)
    responder = Responder(broker, (account,), behaviour=Responder.hold).start()
    try:
        in_time = owner.send((account, "gw-1"), PING, tag="in-time")
        late = owner.send((account, "gw-2"), PING, tag="late")
        responder.wait_held(2)
        sent_at = time.time()
        owner.stop()  # the owner dies with both requests in flight
        responder.release()  # their replies come while no runner awaits them

        # The replies are read in the order they came: once the taker's own is in, the two
        # before it were read too.
        responder.behaviour = Responder.answer
        taker_saw.reply_for(taker.send((account, "gw-3"), PING, tag="marker"))

        taker.expect((account, "gw-1"), in_time, app_id="CMD-V1", tag="in-time",
                     deadline=sent_at + 60)  # fmt: skip
        taker.expect(
            (account, "gw-2"), late, app_id="CMD-V1", tag="late", deadline=sent_at - 60
        )  # its deadline had passed when the reply came
        replied = {pending.tag for pending, _ in taker_saw.replies}
        assert replied == {"marker", "in-time"}
        assert taker.in_flight == 0
        assert taker.expire(late) is not None, "the late one is still awaited, unanswered"
    finally:
        responder.stop()
        taker.stop()
