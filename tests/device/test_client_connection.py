"""Connecting, refusals, losing the broker and getting it back, TLS."""

from __future__ import annotations

import gc
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from jobrunner.device.client import DeviceClient
from jobrunner.device.model import Request
from jobrunner.device.payload import Metric
from jobrunner.device.settings import BrokerSettings
from jobrunner.errors import ConnectError, NotConnectedError
from jobrunner.simulator.broker import RunningBroker, find_mosquitto, free_port, wait_for_port
from tests.device.conftest import WAIT, Recorder, Responder, make_client, unique

pytestmark = pytest.mark.integration

PING = Request("CMD-V1", "EXEC", ("command",), {"command.command": Metric.string("true")})


def test_an_unreachable_broker_is_a_clear_error(recorder: Recorder) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    client: DeviceClient[str] = DeviceClient(BrokerSettings.from_url(url), recorder)
    client.add_account("acme")
    with pytest.raises(ConnectError, match=rf"cannot connect to the broker {url}: .*refused"):
        client.start(timeout=WAIT)
    with pytest.raises(NotConnectedError):
        client.send(("acme", "gw-1"), PING, "t")


def test_losing_the_broker_reconnects_resubscribes_and_keeps_pending_requests(
    own_broker: RunningBroker, recorder: Recorder
) -> None:
    account = unique("acct")
    client = make_client(own_broker, recorder, account)
    client.start(WAIT)
    responder = Responder(own_broker, (account,), behaviour=Responder.hold).start()
    try:
        kept = client.send((account, "gw-1"), PING, tag="kept")
        responder.wait_held(1)

        own_broker.stop()
        recorder.wait(lambda: any(not up for up, _ in recorder.connections), "the drop")
        with pytest.raises(NotConnectedError, match="not sent"):
            client.send((account, "gw-2"), PING, "t")
        own_broker.start()
        recorder.wait(lambda: recorder.connections[-1][0] is True, "the reconnection", 30)
        states = [up for up, _ in recorder.connections]
        # Failed reconnection attempts may report "down" again while the broker is away.
        collapsed = [up for i, up in enumerate(states) if i == 0 or up != states[i - 1]]
        assert collapsed == [True, False, True]
        assert client.connected and client.in_flight == 1
        responder.wait_resubscribed()

        responder.release()  # the device answers the request sent before the outage
        recorder.reply_for(kept)
        responder.behaviour = Responder.answer
        recorder.reply_for(client.send((account, "gw-2"), PING, "t"))
    finally:
        responder.stop()
        client.stop()


def test_the_session_says_whether_the_broker_kept_what_was_published_meanwhile(
    own_broker: RunningBroker, recorder: Recorder
) -> None:
    if own_broker.kind != "mosquitto":
        pytest.skip("what a broker keeps of a session is checked on mosquitto")
    account = unique("acct")
    client = make_client(own_broker, recorder, account)
    client.start(WAIT)
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("gw"))
    try:
        # The runner's own connection breaks; the broker keeps its session and queues the
        # BIRTH published meanwhile (QoS 1): it comes after the reconnection.
        sock = client._session.mqtt.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        recorder.wait(lambda: any(not up for up, _ in recorder.connections), "the drop")
        device.connect(own_broker.host, own_broker.port)
        device.loop_start()
        device.publish(f"$EDC/{account}/gw-1/MQTT/BIRTH", b"", qos=1).wait_for_publish(WAIT)
        recorder.wait(lambda: recorder.connections[-1][0] is True, "the reconnection", 30)
        assert client.session_kept
        recorder.wait(lambda: len(recorder.lifecycles) == 1, "the BIRTH published meanwhile")

        own_broker.stop()  # a restart without persistence forgets every session
        recorder.wait(lambda: recorder.connections[-1][0] is False, "the drop")
        own_broker.start()
        recorder.wait(lambda: recorder.connections[-1][0] is True, "the reconnection", 30)
        assert not client.session_kept
    finally:
        device.disconnect()
        device.loop_stop()
        client.stop()


# --- brokers of our own: refusals and TLS (mosquitto and openssl only) -----------------------

needs_mosquitto = pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto not installed")
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


def _mosquitto(folder: Path, *lines: str) -> Iterator[int]:
    port = free_port()
    config = folder / "mosquitto.conf"
    config.write_text("\n".join([f"listener {port} 127.0.0.1", *lines, ""]))
    binary = find_mosquitto()
    assert binary is not None
    process = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        while not wait_for_port("127.0.0.1", port, 0.2):
            if process.poll() is not None:
                assert process.stderr is not None
                raise AssertionError(f"mosquitto exited: {process.stderr.read().decode()}")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=WAIT)
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture
def closed_broker(tmp_path: Path) -> Iterator[int]:
    yield from _mosquitto(tmp_path, "allow_anonymous false")


@needs_mosquitto
def test_a_broker_that_refuses_the_connection_is_a_clear_error(
    closed_broker: int, recorder: Recorder
) -> None:
    settings = BrokerSettings.from_url(
        f"mqtt://127.0.0.1:{closed_broker}", username="runner", password="s3cret-pw"
    )
    client: DeviceClient[str] = DeviceClient(settings, recorder)
    with pytest.raises(ConnectError, match="refused the connection: Not authorized") as caught:
        client.start(WAIT)
    assert "s3cret-pw" not in str(caught.value)
    assert settings.url in str(caught.value)


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki() -> Iterator[Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it.

    In a world-readable folder: mosquitto started as root reads them as its own user."""
    folder = Path(tempfile.mkdtemp(prefix="jobrunner-pki-"))
    folder.chmod(0o755)
    days = ("-days", "2")
    _openssl(folder, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.crt", *days, "-subj", "/CN=jobrunner test CA")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl(folder, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", "-subj", f"/CN={name}")  # fmt: skip
        _openssl(folder, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey",
                 "ca.key", "-CAcreateserial", "-out", f"{name}.crt", *days,
                 "-extfile", "san.ext")  # fmt: skip
    _openssl(folder, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key",
             "-out", "other.crt", *days, "-subj", "/CN=another CA")  # fmt: skip
    for path in folder.iterdir():
        path.chmod(0o644)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def tls_broker(pki: Path) -> Iterator[int]:
    yield from _mosquitto(
        pki,
        "allow_anonymous true",
        f"cafile {pki / 'ca.crt'}",
        f"certfile {pki / 'server.crt'}",
        f"keyfile {pki / 'server.key'}",
        "require_certificate true",
    )


@needs_mosquitto
@needs_openssl
def test_tls_with_a_client_certificate_connects_and_round_trips(
    tls_broker: int, pki: Path, recorder: Recorder
) -> None:
    settings = BrokerSettings.resolve(
        f"mqtts://127.0.0.1:{tls_broker}",
        client_id=unique("runner"),
        env={
            "JOBRUNNER_MQTT_CA_FILE": str(pki / "ca.crt"),
            "JOBRUNNER_MQTT_CERT_FILE": str(pki / "client.crt"),
            "JOBRUNNER_MQTT_KEY_FILE": str(pki / "client.key"),
        },
    )
    client: DeviceClient[str] = DeviceClient(settings, recorder)
    client.add_account("acme")
    client.start(WAIT)
    try:
        assert client.connected
        topic = f"$EDC/acme/{client.client_id}/CMD-V1/REPLY/over-tls"
        client.expect(("acme", "gw-1"), "over-tls", app_id="CMD-V1", tag="t")
        device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("device"))
        device.tls_set(str(pki / "ca.crt"), str(pki / "client.crt"), str(pki / "client.key"))
        device.connect("127.0.0.1", tls_broker)
        device.loop_start()
        try:
            device.publish(topic, Responder.ok(), qos=1).wait_for_publish(WAIT)
            recorder.reply_for("over-tls")
        finally:
            device.disconnect()
            device.loop_stop()
    finally:
        client.stop()


@needs_mosquitto
@needs_openssl
# paho 2.2 leaves the socket of a failed TLS handshake to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_tls_with_the_wrong_ca_is_refused_with_the_reason(
    tls_broker: int, pki: Path, recorder: Recorder
) -> None:
    settings = BrokerSettings.from_url(
        f"mqtts://127.0.0.1:{tls_broker}",
        ca_file=pki / "other.crt",
        cert_file=pki / "client.crt",
        key_file=pki / "client.key",
    )
    client: DeviceClient[str] = DeviceClient(settings, recorder)
    with pytest.raises(ConnectError, match="certificate verify failed"):
        client.start(WAIT)
    gc.collect()  # here, where the warning is ignored, not in a later test
