"""Kura control topics: requests, replies, DEPLOY-V2 notifications and lifecycle messages.

    request       $EDC/{account}/{device}/{APP-VER}/{METHOD}/{resource}/...
    reply         $EDC/{account}/{requester}/{APP-VER}/REPLY/{requestId}
    notification  $EDC/{account}/{requester}/{APP-VER}/NOTIFY/{device}/{resource}/...
    lifecycle     $EDC/{account}/{device}/MQTT/{BIRTH|DC|LWT|APPS}

Every topic a device publishes is untrusted: `parse_topic` accepts only these shapes, with
non-empty segments and no MQTT wildcards, and says what is wrong otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from jobrunner.errors import TopicError
from jobrunner.immutable import immutable

CONTROL_PREFIX = "$EDC"
METHODS = frozenset({"GET", "PUT", "POST", "DEL", "EXEC", "SUBMIT", "CANCEL"})


class Lifecycle(StrEnum):
    BIRTH = "BIRTH"
    DC = "DC"
    LWT = "LWT"
    APPS = "APPS"


@immutable
class RequestTopic:
    account: str
    device: str
    app_id: str
    method: str
    resources: tuple[str, ...]

    def __str__(self) -> str:
        return "/".join(
            (CONTROL_PREFIX, self.account, self.device, self.app_id, self.method, *self.resources)
        )


@dataclass(frozen=True, slots=True)
class ReplyTopic:
    account: str
    requester: str
    app_id: str
    request_id: str

    def __str__(self) -> str:
        return "/".join(
            (CONTROL_PREFIX, self.account, self.requester, self.app_id, "REPLY", self.request_id)
        )


@immutable
class NotifyTopic:
    account: str
    requester: str
    app_id: str
    device: str
    resources: tuple[str, ...]

    def __str__(self) -> str:
        return "/".join(
            (
                CONTROL_PREFIX,
                self.account,
                self.requester,
                self.app_id,
                "NOTIFY",
                self.device,
                *self.resources,
            )
        )


@dataclass(frozen=True, slots=True)
class LifecycleTopic:
    account: str
    device: str
    kind: Lifecycle

    def __str__(self) -> str:
        return "/".join((CONTROL_PREFIX, self.account, self.device, "MQTT", self.kind.value))


Topic = RequestTopic | ReplyTopic | NotifyTopic | LifecycleTopic


def parse_topic(topic: str) -> Topic:
    """The Kura control topic `topic` is; TopicError saying what is wrong when it is none."""
    parts = topic.split("/")
    if parts[0] != CONTROL_PREFIX:
        raise TopicError(f"topic does not start with {CONTROL_PREFIX}/")
    if len(parts) < 5:
        raise TopicError(f"topic has {len(parts)} segments; a control topic has at least 5")
    for index, part in enumerate(parts[1:], start=1):
        if not part:
            raise TopicError(f"segment {index} of the topic is empty")
        if "+" in part or "#" in part:
            raise TopicError(f"segment {index} of the topic holds an MQTT wildcard")
    account, client, app_id, verb, rest = parts[1], parts[2], parts[3], parts[4], parts[5:]
    if app_id == "MQTT":
        if rest or verb not in Lifecycle.__members__:
            raise TopicError(f"unknown lifecycle topic MQTT/{'/'.join(parts[4:])}")
        return LifecycleTopic(account, client, Lifecycle(verb))
    if verb == "REPLY":
        if len(rest) != 1:
            raise TopicError("a reply topic ends with REPLY/{requestId}")
        return ReplyTopic(account, client, app_id, rest[0])
    if verb == "NOTIFY":
        if len(rest) < 2:
            raise TopicError("a notification topic ends with NOTIFY/{device}/{resource}")
        return NotifyTopic(account, client, app_id, rest[0], tuple(rest[1:]))
    if verb in METHODS:
        return RequestTopic(account, client, app_id, verb, tuple(rest))
    raise TopicError(f"'{verb}' is not a request method, REPLY or NOTIFY")


def reply_filter(account: str, requester: str) -> str:
    """What the runner subscribes to for the replies to its requests."""
    return f"{CONTROL_PREFIX}/{account}/{requester}/+/REPLY/+"


def notify_filter(account: str, requester: str) -> str:
    """What the runner subscribes to for asynchronous notifications addressed to it."""
    return f"{CONTROL_PREFIX}/{account}/{requester}/+/NOTIFY/#"


def lifecycle_filter(account: str) -> str:
    """Births, disconnects, LWTs and app lists of every device of an account."""
    return f"{CONTROL_PREFIX}/{account}/+/MQTT/+"
