"""Broker settings: URL, defaults, explicit > environment > default, and secrets kept secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner.device.settings import BrokerSettings, default_client_id, parse_broker_url
from jobrunner.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker.example.com", ("broker.example.com", 1883, False)),
        ("mqtts://broker.example.com", ("broker.example.com", 8883, True)),
        ("mqtt://10.0.0.5:11883", ("10.0.0.5", 11883, False)),
        ("mqtts://[::1]:9000/", ("::1", 9000, True)),
        ("  mqtt://localhost:1883  ", ("localhost", 1883, False)),
    ],
)
def test_broker_urls(url: str, expected: tuple[str, int, bool]) -> None:
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("tcp://localhost:1883", "scheme 'tcp'"),
        ("localhost:1883", "write mqtt://host:port"),
        ("mqtt://:1883", "has no host"),
        ("mqtt://localhost:port", "not valid"),
        ("mqtt://localhost:0", "outside 1..65535"),
        ("mqtt://localhost:1883/topic", "has a path or query"),
    ],
)
def test_bad_broker_urls_say_what_would_be_right(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        BrokerSettings.from_url(url)


def test_credentials_in_the_url_are_refused_without_being_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        BrokerSettings.from_url("mqtt://admin:hunter2@broker:1883")
    message = str(caught.value)
    assert "hunter2" not in message and "admin" not in message
    assert "mqtt://***@broker:1883" in message
    assert "JOBRUNNER_MQTT_PASSWORD" in message


def test_defaults() -> None:
    settings = BrokerSettings.resolve(env={})
    assert (settings.url, settings.keepalive, settings.tls) == ("mqtt://localhost:1883", 30, False)
    assert settings.client_id == default_client_id()
    assert settings.client_id.startswith("jobrunner-")
    assert settings.username is None and settings.password is None


def test_explicit_values_beat_the_environment_which_beats_defaults(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    env = {
        "JOBRUNNER_BROKER": "mqtts://env-broker:8884",
        "JOBRUNNER_CLIENT_ID": "runner-env",
        "JOBRUNNER_MQTT_USERNAME": "env-user",
        "JOBRUNNER_MQTT_PASSWORD": "env-pw",
        "JOBRUNNER_MQTT_CA_FILE": str(ca),
    }
    from_env = BrokerSettings.resolve(env=env)
    assert (from_env.url, from_env.client_id, from_env.username, from_env.password) == (
        "mqtts://env-broker:8884",
        "runner-env",
        "env-user",
        "env-pw",
    )
    assert from_env.ca_file == ca
    explicit = BrokerSettings.resolve(
        "mqtts://cli-broker", client_id="runner-cli", username="cli-user", env=env
    )
    assert (explicit.url, explicit.client_id, explicit.username, explicit.password) == (
        "mqtts://cli-broker:8883",
        "runner-cli",
        "cli-user",
        "env-pw",
    )


def test_the_password_never_shows(tmp_path: Path) -> None:
    settings = BrokerSettings.resolve(
        "mqtt://broker", username="runner", password="hunter2", env={}
    )
    for text in (repr(settings), str(settings), f"{settings}", f"{settings!r}"):
        assert "hunter2" not in text
    assert "password='***'" in repr(settings)
    assert str(settings) == f"mqtt://broker:1883 as {settings.client_id}"


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"client_id": "runner/1"}, "cannot be used: it is a segment of the reply topics"),
        ({"client_id": "runner #1"}, "cannot be used"),
        ({"keepalive": 70000}, "outside 0..65535"),
        ({"password": "pw"}, "no username"),
        ({"key_file": Path("k.pem")}, "without its certificate"),
        ({"ca_file": Path("ca.pem")}, "use mqtts://broker:1883"),
    ],
)
def test_inconsistent_settings_are_refused(values: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        BrokerSettings.from_url("mqtt://broker", **values)
    assert "pw" not in str(caught.value).replace("password", "")


def test_tls_files_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match=f"TLS file {missing} does not exist"):
        BrokerSettings.resolve("mqtts://broker", ca_file=missing, env={})


def test_default_client_id_is_topic_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "my host/with+odd#chars")
    assert default_client_id() == "jobrunner-my-host-with-odd-chars"


def test_the_default_client_id_has_no_dot(monkeypatch: pytest.MonkeyPatch) -> None:
    """RabbitMQ's MQTT plugin turns a '.' into a topic level: replies would never come."""
    monkeypatch.setattr("socket.gethostname", lambda: "runner-1.plant.example.com")
    assert default_client_id() == "jobrunner-runner-1-plant-example-com"
