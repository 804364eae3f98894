"""Secret properties: a reference is recorded, never a value; a literal is warned about; the
resolver reads env and files and names the reference (never the value) when it cannot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from jobrunner.errors import SecretError
from jobrunner.manifests import ManifestSet
from jobrunner.manifests.secrets import (
    MASK,
    LiteralSecret,
    SecretRef,
    SecretResolver,
    _secret_fields,
    masked,
    secrets_in,
    with_secrets,
)
from jobrunner.manifests.steps import CommandExecution, ConfigurationPut, PackageDownload

from .conftest import JOB_HEADER, Write, messages


def everything(result: ManifestSet, file: Path) -> list[tuple[int, str]]:
    """(line, text after FILE:LINE:) of every diagnostic of one file, warnings included."""
    return [(d.line, str(d).split(": ", 1)[1]) for d in result.diagnostics if d.file == file]


SECRET = "pa55-W0rd-never-shown"


def job(properties: str, definition: str = "Command Execution") -> str:
    return JOB_HEADER.format(name="with-secret") + (
        "  targets: {devices: [gw-1]}\n"
        "  steps:\n"
        "    - name: run\n"
        f"      definition: {definition}\n"
        "      properties:\n" + "".join(f"        {line}\n" for line in properties.splitlines())
    )


def test_a_reference_is_kept_as_written_and_dumped_as_the_reference(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    write("a.yaml", job("command: ls\npassword: {valueFrom: {env: CMD_PASSWORD}}"))

    result = load()

    assert result.diagnostics == []
    step = result.jobs[("acme", "with-secret")].manifest.spec.steps[0]
    assert step.properties.password == _ref(env="CMD_PASSWORD")  # type: ignore[union-attr]
    dumped = step.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["properties"]["password"] == {"valueFrom": {"env": "CMD_PASSWORD"}}


def test_a_literal_password_is_a_warning_at_its_line(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    path = write("a.yaml", job(f"command: ls\npassword: {SECRET}"))

    result = load()

    assert result.errors == []
    [(line, message)] = everything(result, path)
    assert line == 13
    assert message.startswith("warning: step 'run': properties.password holds a literal password")
    assert "use valueFrom: {env: NAME} or valueFrom: {file: PATH}" in message
    assert SECRET not in message
    step = result.jobs[("acme", "with-secret")].manifest.spec.steps[0]
    password = step.properties.password  # type: ignore[union-attr]
    assert isinstance(password, LiteralSecret) and password == SECRET
    assert SECRET not in repr(result.jobs[("acme", "with-secret")].manifest)


def test_a_literal_password_in_a_step_that_reads_device_values_is_a_warning_too(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    path = write("a.yaml", job(f"command: echo ${{device.clientId}}\npassword: {SECRET}"))

    result = load()

    assert result.errors == []
    [(line, message)] = everything(result, path)
    assert line == 13
    assert message.startswith("warning: step 'run': properties.password holds a literal password")


def test_a_literal_configuration_password_is_a_warning_and_a_reference_is_accepted(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    properties = (
        "configurations:\n"
        "  - pid: org.eclipse.kura.net.admin\n"
        "    properties:\n"
        f"      literal: {{type: Password, value: {SECRET}}}\n"
        "      kept: {type: Password, value: {valueFrom: {file: acme/wifi}}}\n"
    )
    path = write("a.yaml", job(properties, "Configuration Put"))

    result = load()

    assert [(line, text.split(":")[0]) for line, text in everything(result, path)] == [
        (15, "warning")
    ]
    assert "configurations[0].properties.literal.value holds a literal password" in str(
        result.diagnostics[0]
    )


@pytest.mark.parametrize(
    ("password", "says"),
    [
        ("{valueFrom: {file: /etc/shadow}}", "'/etc/shadow' is an absolute path"),
        ("{valueFrom: {file: acme/../../etc/shadow}}", "without '.' or '..'"),
        ("{valueFrom: {file: ../x}}", "without '.' or '..'"),
        ("{valueFrom: {file: 'a//b'}}", "is not a secret file name"),
        ("{valueFrom: {env: 1BAD}}", "'1BAD' is not an environment variable name"),
        ("{valueFrom: {env: A, file: b}}", "exactly one of 'env'"),
        ("{valueFrom: {}}", "exactly one of 'env'"),
        ("{valueFrom: {vault: x}}", "unknown key 'vault'"),
        ("{valueFromm: {env: X}}", "unknown key 'valueFromm'; did you mean 'valueFrom'?"),
    ],
)
def test_a_bad_reference_is_an_error_at_its_line(
    write: Write, load: Callable[[], ManifestSet], password: str, says: str
) -> None:
    path = write("a.yaml", job(f"command: ls\npassword: {password}"))

    found = messages(load(), path)

    assert {line for line, _ in found} == {13}
    assert any(says in message for _, message in found), found


def test_a_password_of_the_wrong_type_is_not_echoed(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    path = write("a.yaml", job("command: ls\npassword: 8675309"))

    [(line, message)] = messages(load(), path)

    assert line == 13
    assert "8675309" not in message
    assert "not shown here (a secret)" in message


def test_a_reference_is_only_for_password_typed_configuration_values(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    properties = (
        "configurations:\n"
        "  - pid: p\n"
        "    properties:\n"
        "      host: {type: String, value: {valueFrom: {env: HOST}}}\n"
    )
    path = write("a.yaml", job(properties, "Configuration Put"))

    [(line, message)] = messages(load(), path)

    assert line == 15
    assert message == "valueFrom is for properties of type Password only"


# --- finding and replacing secrets ---------------------------------------------------------------


def _download(**extra: object) -> PackageDownload:
    return PackageDownload.model_validate(
        {"uri": "https://repo.example/a.dp", "name": "a", "version": "1", **extra}
    )


def test_every_secret_of_a_model_is_found_with_its_path() -> None:
    put = ConfigurationPut.model_validate(
        {
            "configurations": [
                {
                    "pid": "p",
                    "properties": {
                        "a": {"type": "Password", "value": "x"},
                        "b": {"type": "Password", "value": {"valueFrom": {"env": "B"}}},
                        "c": "not secret",
                    },
                }
            ]
        }
    )
    found = [(path, type(secret).__name__) for path, secret in secrets_in(put)]
    assert found == [
        (("configurations", 0, "properties", "a", "value"), "LiteralSecret"),
        (("configurations", 0, "properties", "b", "value"), "SecretRef"),
    ]


def test_references_are_replaced_in_a_copy_and_the_original_keeps_them() -> None:
    download = _download(
        username={"valueFrom": {"env": "USER"}}, password={"valueFrom": {"file": "acme/pw"}}
    )

    resolved = with_secrets(download, lambda ref: f"<{ref.value_from}>")
    shown = with_secrets(download, masked)

    assert (resolved.username, resolved.password) == ("<env USER>", "<file acme/pw>")
    assert (shown.username, shown.password) == (MASK, MASK)
    assert isinstance(download.password, SecretRef)
    plain = CommandExecution.model_validate({"command": "ls"})
    assert with_secrets(plain, masked) is plain


# --- resolving -----------------------------------------------------------------------------------


def _ref(**source: str) -> SecretRef:
    return SecretRef.model_validate({"valueFrom": source})


def test_an_environment_variable_is_read_when_resolved() -> None:
    resolver = SecretResolver(Path("/nonexistent"), {"CMD_PASSWORD": SECRET})
    assert resolver.resolve(_ref(env="CMD_PASSWORD")) == SECRET


@pytest.mark.parametrize(
    ("environ", "says"),
    [({}, "the environment variable CMD_PASSWORD is not set"), ({"CMD_PASSWORD": ""}, "empty")],
)
def test_a_missing_environment_variable_names_the_reference(
    environ: dict[str, str], says: str
) -> None:
    with pytest.raises(SecretError) as caught:
        SecretResolver(Path("/nonexistent"), environ).resolve(_ref(env="CMD_PASSWORD"))
    assert str(caught.value).startswith("secret valueFrom env CMD_PASSWORD: ")
    assert says in str(caught.value)


def test_a_secret_file_is_read_without_its_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "repo").write_text(SECRET + "\n")
    assert SecretResolver(tmp_path, {}).resolve(_ref(file="acme/repo")) == SECRET


def test_the_secrets_directory_comes_from_the_argument_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBRUNNER_SECRETS_DIR", str(tmp_path))
    assert SecretResolver.from_environment().directory == tmp_path
    assert SecretResolver.from_environment(Path("/x")).directory == Path("/x")
    monkeypatch.delenv("JOBRUNNER_SECRETS_DIR")
    assert SecretResolver.from_environment().directory == Path("/etc/jobrunner/secrets")


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: None, "no such file"),
        (lambda d: (d / "acme" / "repo").write_bytes(b"\xff\xfe"), "not UTF-8 text"),
        (lambda d: (d / "acme" / "repo").write_text("\n"), "the file is empty"),
        (lambda d: (d / "acme" / "repo").write_bytes(b"x" * 70_000), "larger than 64 KB"),
        (lambda d: (d / "acme" / "repo").symlink_to(d.parent / "outside"), "leads out of"),
        (lambda d: (d / "acme" / "repo").mkdir(), "cannot be read"),
    ],
    ids=["missing", "not-utf8", "empty", "huge", "symlink-out", "a-folder"],
)
def test_a_secret_file_that_cannot_be_used_names_the_reference_only(
    tmp_path: Path, make: Callable[[Path], object], says: str
) -> None:
    secrets_dir = tmp_path / "secrets"
    (secrets_dir / "acme").mkdir(parents=True)
    (tmp_path / "outside").write_text(SECRET)
    make(secrets_dir)

    with pytest.raises(SecretError) as caught:
        SecretResolver(secrets_dir, {}).resolve(_ref(file="acme/repo"))

    text = str(caught.value)
    assert text.startswith(f"secret valueFrom file acme/repo (in {secrets_dir}): ")
    assert says in text
    assert SECRET not in text


def test_a_symbolic_link_inside_the_secrets_directory_is_followed(tmp_path: Path) -> None:
    # As Kubernetes mounts secrets: key -> ..data/key -> ..2026_01_01/key, all inside.
    (tmp_path / "..2026").mkdir()
    (tmp_path / "..2026" / "repo").write_text(SECRET)
    (tmp_path / "..data").symlink_to("..2026")
    (tmp_path / "repo").symlink_to("..data/repo")
    assert SecretResolver(tmp_path, {}).resolve(_ref(file="repo")) == SECRET


def test_only_the_fields_that_may_hold_a_secret_are_looked_through() -> None:
    """A step's properties are looked through for secrets at every read of the manifests:
    the fields whose type cannot hold one (a URI, a timeout) are left out, those that can
    (a password, a user name, a typed property's value, anything typed `Any`) are not."""
    download = _download(username="admin", password=SECRET)
    found = {path: type(secret).__name__ for path, secret in secrets_in(download)}
    assert found == {("password",): "LiteralSecret"}  # a user name is a Credential: no warning
    walked = [name for name, _ in _secret_fields[PackageDownload]]
    assert walked == ["username", "password"]
    assert [name for name, _ in _secret_fields[ConfigurationPut]] == ["configurations"]

    class Loose(BaseModel):
        anything: Any = None
        count: int = 0

    loose = Loose(anything={"nested": [SecretRef.model_validate({"valueFrom": {"env": "X"}})]})
    assert [path for path, _ in secrets_in(loose)] == [("anything", "nested", 0)]
    assert [name for name, _ in _secret_fields[Loose]] == ["anything"]
