"""Under systemd: the state directory from `StateDirectory=` ($STATE_DIRECTORY), the broker's
credentials and the secrets from `LoadCredential=` ($CREDENTIALS_DIRECTORY)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jobrunner.cli.main import cli
from jobrunner.errors import SecretError
from jobrunner.manifests.secrets import SecretRef, SecretResolver

SYSTEMD_VARIABLES = ("STATE_DIRECTORY", "CREDENTIALS_DIRECTORY")
OURS = ("JOBRUNNER_STATE_DIR", "JOBRUNNER_SECRETS_DIR", "JOBRUNNER_CONFIG")


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (*SYSTEMD_VARIABLES, *OURS, "JOBRUNNER_MQTT_USERNAME", "JOBRUNNER_MQTT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./jobrunner.yaml of the checkout


def config(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["config", "-o", "json", *args])
    assert result.exit_code == 0, result.output
    shown: dict[str, Any] = json.loads(result.output)
    return shown


def test_the_state_directory_is_systemds_unless_one_is_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert config()["stateDir"]["value"] == "state"
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/jobrunner:/var/lib/other")
    assert config()["stateDir"] == {"value": "/var/lib/jobrunner", "source": "default"}
    file = tmp_path / "jobrunner.yaml"
    file.write_text("stateDir: /srv/state\n")
    assert config("--config", str(file))["stateDir"]["value"] == "/srv/state"
    monkeypatch.setenv("JOBRUNNER_STATE_DIR", "/srv/env")
    assert config()["stateDir"]["value"] == "/srv/env"
    assert config("--state-dir", "/srv/flag")["stateDir"]["value"] == "/srv/flag"


def test_the_broker_credentials_come_from_a_loaded_credential(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert (config()["username"]["value"], config()["password"]["value"]) == ("-", "-")
    (credentials / "mqtt.yaml").write_text("username: runner\npassword: s3cret\n")
    shown = config()
    assert (shown["username"]["value"], shown["password"]["value"]) == ("runner", "***")
    assert "s3cret" not in json.dumps(shown)

    mine = tmp_path / "mine.yaml"  # a credentialsFile of the configuration wins
    mine.write_text("username: other\npassword: x\n")
    file = tmp_path / "jobrunner.yaml"
    file.write_text(f"credentialsFile: {mine}\n")
    assert config("--config", str(file))["username"]["value"] == "other"


def test_file_secrets_are_read_from_the_credentials_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    reference = SecretRef.model_validate({"valueFrom": {"file": "repo-password"}})
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "repo-password").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert SecretResolver.from_environment().directory == credentials
    assert SecretResolver.from_environment().resolve(reference) == "from-systemd"

    ours = tmp_path / "secrets"  # $JOBRUNNER_SECRETS_DIR (or --secrets-dir) wins
    ours.mkdir()
    monkeypatch.setenv("JOBRUNNER_SECRETS_DIR", str(ours))
    assert SecretResolver.from_environment().directory == ours
    with pytest.raises(SecretError, match="repo-password"):
        SecretResolver.from_environment().resolve(reference)
    assert SecretResolver.from_environment(credentials).resolve(reference) == "from-systemd"
