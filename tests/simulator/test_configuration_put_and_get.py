"""CONF-V1: the esf:configurations XML read literally, applied a moment after the 200."""

from __future__ import annotations

from collections.abc import Callable
from xml.etree import ElementTree

from jobrunner.simulator.fleet import Fleet
from tests.simulator.conftest import WAIT, Requester

PID = "org.eclipse.kura.cloud.publisher.CloudPublisher-warehouse"
ESF = (
    'xmlns:esf="http://eurotech.com/esf/2.0" xmlns:ocd="http://www.osgi.org/xmlns/metatype/v1.2.0"'
)


def document(pid: str = PID, value: str = "300", prefix: str = "esf", ns: str = ESF) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><{prefix}:configurations {ns}>'
        f'<{prefix}:configuration pid="{pid}"><{prefix}:properties>'
        f'<{prefix}:property name="publish.interval" array="false" encrypted="false"'
        ' type="Integer">'
        f"<{prefix}:value>{value}</{prefix}:value></{prefix}:property>"
        f"</{prefix}:properties></{prefix}:configuration></{prefix}:configurations>"
    ).encode()


def interval(fleet: Fleet, device: str = "gw-0001") -> str | None:
    return fleet.device(device).state.setting(PID, "publish.interval")


def test_put_is_applied_after_the_reply_and_get_shows_it(
    requester: Requester, make_fleet: Callable[..., Fleet], dots_in_topics: None
) -> None:
    fleet = make_fleet()
    assert interval(fleet) == "60"
    assert (
        requester.call("gw-0001", "CONF-V1", "PUT", "configurations", body=document()).code == 200
    )
    assert fleet.wait_for(lambda: interval(fleet) == "300", WAIT)
    reply = requester.call("gw-0001", "CONF-V1", "GET", "configurations", PID)
    root = ElementTree.fromstring(reply.payload.body or b"")
    ns = {"esf": "http://eurotech.com/esf/2.0"}
    (config,) = root.findall("esf:configuration", ns)
    assert config.get("pid") == PID
    values = {
        p.get("name"): p.findtext("esf:value", namespaces=ns)
        for p in config.iterfind("esf:properties/esf:property", ns)
    }
    assert values["publish.interval"] == "300" and values["app.topic"] == "warehouse/data"
    assert interval(fleet, "gw-0002") == "60"  # other devices keep their own state


WATCHDOG = "org.eclipse.kura.watchdog.WatchdogService"


def applied_barrier(requester: Requester, fleet: Fleet, value: str) -> None:
    """PUT to another PID and wait until it applied: earlier PUTs have applied by then."""
    body = document(pid=WATCHDOG, value=value)
    assert requester.call("gw-0001", "CONF-V1", "PUT", "configurations", body=body).code == 200
    assert fleet.wait_for(
        lambda: fleet.device("gw-0001").state.setting(WATCHDOG, "publish.interval") == value, WAIT
    )


def test_the_esf_prefix_is_read_literally(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    fleet = make_fleet()
    other = document(value="111", prefix="k", ns='xmlns:k="http://eurotech.com/esf/2.0"')
    default = document(value="222", prefix="", ns='xmlns="http://eurotech.com/esf/2.0"')
    default = default.replace(b"<:", b"<").replace(b"</:", b"</")
    for body in (other, default):
        # Parsed, but no element is named esf:configuration: 200, and nothing changes.
        assert requester.call("gw-0001", "CONF-V1", "PUT", "configurations", body=body).code == 200
    applied_barrier(requester, fleet, "1")
    assert interval(fleet) == "60"
    # A non-namespace-aware parser does not even need the prefix declared.
    unbound = document(value="300", ns="")
    assert requester.call("gw-0001", "CONF-V1", "PUT", "configurations", body=unbound).code == 200
    assert fleet.wait_for(lambda: interval(fleet) == "300", WAIT)


def test_empty_unparsable_or_mistyped_bodies_are_400(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    for body in (None, b"", b"<esf:configurations", document(value="five minutes")):
        assert requester.call("gw-0001", "CONF-V1", "PUT", "configurations", body=body).code == 400
    assert (
        requester.call(
            "gw-0001", "CONF-V1", "PUT", "configurations", "a", "b", body=document()
        ).code
        == 400
    )


def test_put_of_a_pid_resource_applies_only_that_pid(
    requester: Requester, make_fleet: Callable[..., Fleet], dots_in_topics: None
) -> None:
    fleet = make_fleet()
    reply = requester.call(
        "gw-0001", "CONF-V1", "PUT", "configurations", "other.pid", body=document()
    )
    assert reply.code == 200
    applied_barrier(requester, fleet, "2")
    assert interval(fleet) == "60"


def test_a_large_reply_is_gzipped_and_a_small_one_is_not(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    large = requester.call("gw-0001", "CONF-V1", "GET", "configurations")
    assert large.raw[:2] == b"\x1f\x8b"
    assert b"esf:configurations" in (large.payload.body or b"")
    small = requester.call("gw-0001", "DEPLOY-V2", "EXEC", "start", "42")
    assert small.raw[:2] != b"\x1f\x8b"
