"""Kura control topics are built exactly and parsed strictly."""

from __future__ import annotations

import pytest

from jobrunner.device.topics import (
    Lifecycle,
    LifecycleTopic,
    NotifyTopic,
    ReplyTopic,
    RequestTopic,
    parse_topic,
)
from jobrunner.errors import TopicError

ROUND_TRIPS = [
    RequestTopic("acme", "gw-1", "CMD-V1", "EXEC", ("command",)),
    RequestTopic("acme", "gw-1", "DEPLOY-V2", "EXEC", ("stop", "42")),
    RequestTopic("acme", "gw-1", "CONF-V1", "PUT", ("configurations",)),
    ReplyTopic("acme", "runner-1", "CMD-V1", "-3306630263411567785"),
    NotifyTopic("acme", "runner-1", "DEPLOY-V2", "gw-1", ("download",)),
    LifecycleTopic("acme", "00:E0:C7:01:02:03", Lifecycle.BIRTH),
    LifecycleTopic("acme", "gw-1", Lifecycle.LWT),
]


@pytest.mark.parametrize("topic", ROUND_TRIPS, ids=str)
def test_topics_round_trip(topic: object) -> None:
    assert parse_topic(str(topic)) == topic


def test_request_topic_is_laid_out_as_kura_expects() -> None:
    topic = RequestTopic("acme", "gw-1", "DEPLOY-V2", "EXEC", ("start", "42"))
    assert str(topic) == "$EDC/acme/gw-1/DEPLOY-V2/EXEC/start/42"


def test_notification_names_the_requester_third_and_the_device_sixth() -> None:
    topic = parse_topic("$EDC/acme/runner-1/DEPLOY-V2/NOTIFY/gw-7/install")
    assert topic == NotifyTopic("acme", "runner-1", "DEPLOY-V2", "gw-7", ("install",))


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        ("EDC/acme/gw/CMD-V1/REPLY/1", "does not start with $EDC/"),
        ("$EDC/acme/gw/CMD-V1", "has 4 segments"),
        ("$EDC/acme//CMD-V1/REPLY/1", "segment 2 of the topic is empty"),
        ("$EDC/acme/+/CMD-V1/REPLY/1", "wildcard"),
        ("$EDC/acme/runner/CMD-V1/REPLY", "ends with REPLY/{requestId}"),
        ("$EDC/acme/runner/CMD-V1/REPLY/1/2", "ends with REPLY/{requestId}"),
        ("$EDC/acme/runner/DEPLOY-V2/NOTIFY/gw-1", "ends with NOTIFY/{device}/{resource}"),
        ("$EDC/acme/gw/MQTT/HELLO", "unknown lifecycle topic"),
        ("$EDC/acme/gw/CMD-V1/FETCH/x", "'FETCH' is not a request method"),
    ],
)
def test_malformed_topics_say_what_is_wrong(topic: str, problem: str) -> None:
    with pytest.raises(
        TopicError,
        match=problem.replace("$", r"\$")
        .replace("{", r"\{")
        .replace("}", r"\}")
        .replace("+", r"\+"),
    ):
        parse_topic(topic)
