"""ASSET-V1, KEYS-V1, CERT-V1 and ANSIBLE-V1 as the simulated devices answer them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from jobrunner.device.payload import Metric
from jobrunner.simulator.fleet import Fleet
from tests.simulator.conftest import Received, Requester

PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUFQmL3m2c\n-----END CERTIFICATE-----\n"


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


def parsed(reply: Received) -> Any:
    return json.loads(reply.payload.body or b"null")


def test_asset_write_reports_per_channel_and_unknown_assets_with_200(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    fleet = make_fleet()
    request = [
        {
            "name": "cold-room-controller",
            "channels": [
                {"name": "alarm-threshold", "type": "DOUBLE", "value": "-18.0"},
                {"name": "alarm-enabled", "type": "BOOLEAN", "value": "true"},
                {"name": "temperature", "type": "DOUBLE", "value": "1"},
                {"name": "no-such-channel", "type": "STRING", "value": "x"},
                {"name": "alarm-threshold", "type": "DOUBLE", "value": "cold"},
            ],
        },
        {"name": "no-such-asset", "channels": [{"name": "a", "type": "STRING", "value": "b"}]},
    ]
    reply = requester.call("gw-0001", "ASSET-V1", "EXEC", "write", body=body(request))
    assert reply.code == 200
    controller, unknown = parsed(reply)
    assert unknown == {"name": "no-such-asset", "error": "Asset not found"}
    results = controller["channels"]
    assert {k: results[0][k] for k in ("name", "type", "value")} == {
        "name": "alarm-threshold",
        "type": "DOUBLE",
        "value": "-18.0",
    }
    assert results[1]["value"] == "true" and isinstance(results[1]["timestamp"], int)
    assert [("error" in r) for r in results] == [False, False, True, True, True]
    channels = fleet.device("gw-0001").state.assets["cold-room-controller"]
    assert (
        channels["alarm-threshold"].value == "-18.0" and channels["alarm-enabled"].value == "true"
    )
    read = requester.call(
        "gw-0001", "ASSET-V1", "EXEC", "read", body=body([{"name": "cold-room-controller"}])
    )
    values = {c["name"]: c["value"] for c in parsed(read)[0]["channels"]}
    assert values["alarm-threshold"] == "-18.0" and values["temperature"] == "-19.2"


def test_asset_requests_that_are_not_the_json_array_are_400(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    for wrong in (None, b"not json", body({"name": "x"}), body([{"channels": []}])):
        assert requester.call("gw-0001", "ASSET-V1", "EXEC", "write", body=wrong).code == 400
    assert requester.call("gw-0001", "ASSET-V1", "EXEC", "write", "more").code == 400
    every = parsed(requester.call("gw-0001", "ASSET-V1", "EXEC", "read"))
    assert {a["name"] for a in every} == {"cold-room-controller", "modbus-meter"}


def test_keystore_entries_are_created_listed_and_deleted(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    certificate = {
        "keystoreServicePid": "SSLKeystore",
        "alias": "broker-ca-2027",
        "certificate": PEM,
    }
    keypair = {
        "keystoreServicePid": "SSLKeystore",
        "alias": "mqtt-client-2027",
        "algorithm": "EC",
        "size": 256,
        "signatureAlgorithm": "SHA256withECDSA",
        "attributes": "CN=gw,O=ACME,C=IT",
    }
    for resource, document in (("certificate", certificate), ("keypair", keypair)):
        reply = requester.call(
            "gw-0001", "KEYS-V1", "POST", "keystores", "entries", resource, body=body(document)
        )
        assert reply.code == 200 and set(reply.payload.metrics) == {"response.code"}
    delete = {"keystoreServicePid": "SSLKeystore", "alias": "broker-ca-2026"}
    assert (
        requester.call("gw-0001", "KEYS-V1", "DEL", "keystores", "entries", body=body(delete)).code
        == 200
    )
    entries = parsed(
        requester.call(
            "gw-0001",
            "KEYS-V1",
            "GET",
            "keystores",
            "entries",
            body=body({"keystoreServicePid": "SSLKeystore"}),
        )
    )
    assert {(e["alias"], e["type"]) for e in entries} == {
        ("broker-ca-2027", "TRUSTED_CERTIFICATE"),
        ("mqtt-client-2027", "PRIVATE_KEY"),
        ("mqtt-client-2026", "PRIVATE_KEY"),
    }
    stores = parsed(requester.call("gw-0001", "KEYS-V1", "GET", "keystores"))
    assert {"keystoreServicePid": "SSLKeystore", "type": "PKCS12", "size": 3} in stores


def test_keystore_requests_lacking_fields_are_400_and_unknown_keystores_500(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    post = ("KEYS-V1", "POST", "keystores", "entries")
    assert (
        requester.call(
            "gw-0001",
            *post,
            "certificate",
            body=body({"keystoreServicePid": "SSLKeystore", "alias": "x"}),
        ).code
        == 400
    )
    assert (
        requester.call(
            "gw-0001",
            *post,
            "keypair",
            body=body(
                {
                    "keystoreServicePid": "SSLKeystore",
                    "alias": "k",
                    "algorithm": "RSA",
                    "size": 0,
                    "signatureAlgorithm": "SHA256withRSA",
                    "attributes": "CN=x",
                }
            ),
        ).code
        == 400
    )
    assert requester.call("gw-0001", *post, "certificate").code == 400  # no body
    assert (
        requester.call(
            "gw-0001", "KEYS-V1", "DEL", "keystores", "entries", body=body({"alias": "x"})
        ).code
        == 400
    )
    unknown = requester.call(
        "gw-0001",
        *post,
        "certificate",
        body=body({"keystoreServicePid": "NoSuchKeystore", "alias": "x", "certificate": PEM}),
    )
    assert unknown.code == 500 and "response.exception.message" not in unknown.payload.metrics


def test_device_certificates_install_and_revoke_by_alias_or_pem(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    fleet = make_fleet()
    install = {"certificate": PEM, "alias": "device-2027", "keystoreServicePid": "SSLKeystore"}
    assert (
        requester.call("gw-0001", "CERT-V1", "POST", "certificates", body=body(install)).code == 200
    )
    anonymous = PEM.replace("FQmL", "AAAA")
    assert (
        requester.call(
            "gw-0001", "CERT-V1", "POST", "certificates", body=body({"certificate": anonymous})
        ).code
        == 200
    )
    aliases = set(fleet.device("gw-0001").state.certificates)
    assert {"device-2026", "device-2027"} < aliases and len(aliases) == 3
    assert (
        requester.call(
            "gw-0001", "CERT-V1", "DEL", "certificates", body=body({"certificate": anonymous})
        ).code
        == 200
    )
    assert (
        requester.call(
            "gw-0001", "CERT-V1", "DEL", "certificates", body=body({"alias": "device-2026"})
        ).code
        == 200
    )
    assert (
        requester.call(
            "gw-0001", "CERT-V1", "DEL", "certificates", body=body({"alias": "device-2026"})
        ).code
        == 404
    )
    listed = parsed(requester.call("gw-0001", "CERT-V1", "GET", "certificates"))
    assert [c["alias"] for c in listed] == ["device-2027"]
    assert (
        requester.call(
            "gw-0001", "CERT-V1", "POST", "certificates", body=body({"certificate": "not a pem"})
        ).code
        == 400
    )
    assert requester.call("gw-0001", "CERT-V1", "DEL", "certificates", body=body({})).code == 400


def activity(
    job_id: int = 4_000_000_123, extra: dict[str, Metric] | None = None
) -> dict[str, Metric]:
    metrics = {
        "id": Metric.int64(job_id),
        "job.id": Metric.int64(job_id),
        "download.url": Metric.string("https://repo.example.com/playbook.tar.gz"),
    }
    metrics.update(extra or {})
    return metrics


def test_activity_submit_is_accepted_then_notified_to_completion(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    reply = requester.call("gw-0001", "ANSIBLE-V1", "SUBMIT", metrics=activity())
    assert reply.code == 200
    notes = requester.wait_notification("gw-0001", "activity", "status", {"COMPLETED", "FAILED"})
    assert [n.value("status") for n in notes] == ["IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]
    assert [n.value("progress") for n in notes] == [0, 50, 100]
    for note in notes:
        assert note.topic.endswith("/ANSIBLE-V1/NOTIFY/gw-0001/activity")
        assert (note.kind("job.id"), note.kind("status"), note.kind("progress")) == (
            "INT64",
            "STRING",
            "INT32",
        )
        assert note.value("job.id") == 4_000_000_123 and note.kind("message") == "STRING"


def test_activity_submit_without_required_or_with_mistyped_metrics_is_400(
    requester: Requester, make_fleet: Callable[..., Fleet]
) -> None:
    make_fleet()
    no_url = activity()
    del no_url["download.url"]
    assert requester.call("gw-0001", "ANSIBLE-V1", "SUBMIT", metrics=no_url).code == 400
    assert (
        requester.call(
            "gw-0001", "ANSIBLE-V1", "SUBMIT", metrics=activity(extra={"job.id": Metric.int32(5)})
        ).code
        == 400
    )
    assert (
        requester.call(
            "gw-0001",
            "ANSIBLE-V1",
            "SUBMIT",
            metrics=activity(extra={"download.timeout": Metric.int64(5)}),
        ).code
        == 400
    )
