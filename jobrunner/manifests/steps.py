"""Steps: the 13 step definitions of the catalogue and the typed properties of each.

A step is written with the definition's display name (`definition: Bundle Stop`); the
`definition` key selects the property model. Device-side wire contracts live in
`jobrunner.device.operations`; this module only describes what the operator may write.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from jobrunner.errors import XmlFormError
from jobrunner.manifests.base import Strict
from jobrunner.manifests.fields import Duration, Name, format_duration
from jobrunner.manifests.secrets import Credential, LiteralSecret, Secret, SecretRef
from jobrunner.manifests.xmlforms import assets_from_xml, configurations_from_xml

DEFAULT_TIMEOUT = timedelta(seconds=30)
DEFAULT_COMPLETION_TIMEOUT = timedelta(hours=1)

_PEM_RE = re.compile(r"-----BEGIN [A-Z0-9 ]+-----[\s\S]+?-----END [A-Z0-9 ]+-----")
_HASH_RE = re.compile(r"^[A-Za-z0-9-]+:[0-9a-fA-F]+$")
_URI_RE = re.compile(r"^(https?|ftp)://[^\s/]+\S*$")
_PEM_MAX = 1_048_576  # the device cloud's limit for a certificate property


def _check_pem(value: str) -> str:
    if len(value) > _PEM_MAX:
        raise ValueError(f"the PEM text is longer than {_PEM_MAX} characters")
    if not _PEM_RE.search(value):
        raise ValueError(
            "not PEM text; paste the certificate including its"
            " '-----BEGIN CERTIFICATE-----' and '-----END CERTIFICATE-----' lines"
        )
    return value


def _check_hash(value: str) -> str:
    if not _HASH_RE.match(value):
        raise ValueError(f"{value!r} is not ALGO:hex; write e.g. MD5:46cb0ad3a1c5...")
    return value


def _check_download_uri(value: str) -> str:
    if not _URI_RE.match(value):
        raise ValueError(
            f"{value!r} is not a URL the device can download; write http(s)://host/path"
        )
    return value


Pem = Annotated[
    str,
    AfterValidator(_check_pem),
    Field(json_schema_extra={"contentMediaType": "application/x-pem-file"}),
]
FileHash = Annotated[
    str, AfterValidator(_check_hash), Field(json_schema_extra={"pattern": _HASH_RE.pattern})
]
DownloadUri = Annotated[
    str,
    Field(min_length=1, max_length=2048, json_schema_extra={"pattern": _URI_RE.pattern}),
    AfterValidator(_check_download_uri),
]
Text = Annotated[str, Field(min_length=1, max_length=4096)]


# --- Command Execution ----------------------------------------------------------------------


class CommandExecution(Strict):
    """CMD-V1 EXEC/command: run a command line on the gateway; non-zero exit fails the step."""

    command: Text = Field(description="the program the device runs")
    arguments: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="its arguments, one item each"
    )
    environment: dict[str, str] = Field(
        default_factory=dict, description="environment variables set for it"
    )
    working_directory: Text | None = Field(default=None, description="the folder it runs in")
    stdin: str | None = Field(default=None, description="text written to its standard input")
    password: Secret | None = Field(
        default=None,
        description="the password of Kura's command service, when it asks for one (a secret)",
    )
    run_async: bool = Field(
        default=False,
        description="true: the device starts it and replies at once, without its output",
    )
    command_timeout: Duration | None = Field(
        default=None, description="device-side limit, sent to the device in whole seconds"
    )

    @field_validator("environment")
    @classmethod
    def _names_without_equals(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not name or "=" in name:
                raise ValueError(f"environment name {name!r} must be non-empty and without '='")
            if not text:  # Kura splits NAME=VALUE and throws on an empty value: 500, no run
                raise ValueError(
                    f"environment variable {name!r} has an empty value, which Kura refuses"
                    " (the whole command fails, 500, nothing runs): give it a value or leave"
                    " it out"
                )
        return value


# --- Configuration Put ----------------------------------------------------------------------

ConfigurationType = Literal[
    "String", "Long", "Double", "Float", "Integer", "Byte", "Char", "Boolean", "Short", "Password"
]
ScalarValue = str | bool | int | float


class TypedProperty(Strict):
    """A configuration property whose Kura type is written out: `{type: Long, value: 5}`.

    A `Password` value is a secret: a literal (warned about) or `{valueFrom: ...}`.
    """

    type: ConfigurationType
    value: ScalarValue | list[ScalarValue] | SecretRef = Field(
        description="the value; a list for an array property, a secret reference for a Password"
    )

    @field_validator("value")
    @classmethod
    def _passwords_are_secrets(cls, value: Any, info: ValidationInfo) -> Any:
        password = info.data.get("type") == "Password"
        if isinstance(value, SecretRef) and not password:
            raise ValueError("valueFrom is for properties of type Password only")
        if password and isinstance(value, str):
            return LiteralSecret(value)
        if password and isinstance(value, list):
            return [LiteralSecret(v) if isinstance(v, str) else v for v in value]
        return value


class ComponentConfiguration(Strict):
    """The properties of one OSGi component, by its PID."""

    pid: Text = Field(description="the component's persistent id (PID)")
    properties: dict[str, ScalarValue | list[ScalarValue] | TypedProperty] = Field(
        description="property name: value; the Kura type is inferred (true/false, whole"
        " number, decimal, text) or written out as {type, value}",
    )


def _either_structured_or_xml(key: str) -> Callable[[dict[str, Any]], None]:
    """JSON Schema: `key` or `xml` is required (the models fill `key` from `xml`)."""

    def adjust(schema: dict[str, Any]) -> None:
        schema["required"] = [r for r in schema.get("required", []) if r != key]
        schema["oneOf"] = [{"required": [key]}, {"required": ["xml"]}]

    return adjust


def _structured_from_xml(data: Any, key: str, read: Callable[[str], list[Any]]) -> Any:
    """Fill `key` from the `xml` form; exactly one of the two may be written (see
    `_as_written` for the way back)."""
    if not isinstance(data, dict) or "xml" not in data:
        return data
    if key in data:
        raise ValueError(f"give either '{key}' or 'xml', not both")
    if not isinstance(data["xml"], str):
        raise ValueError("'xml' is the XML document as text (use a | block)")
    try:
        return {**data, key: read(data["xml"])}
    except XmlFormError as error:
        raise ValueError(str(error)) from None


def _as_written(model: Strict, handler: SerializerFunctionWrapHandler, key: str) -> dict[str, Any]:
    """Dump a step written as `xml:` as it was written, without the `key` read from it: the
    dump is what a frozen job records and validates again on every load, and the model
    refuses both forms at once."""
    dumped: dict[str, Any] = handler(model)
    if getattr(model, "xml", None) is not None:
        dumped.pop(key, None)
    return dumped


class ConfigurationPut(Strict):
    """CONF-V1 PUT/configurations: apply component configurations.

    Written as structured YAML (`configurations`) or as the device cloud's XML (`xml`: Kura's
    esf:configurations or the cloud's configurations document), which is read into the
    structured form here, so that every later stage sees one form.
    """

    model_config = ConfigDict(json_schema_extra=_either_structured_or_xml("configurations"))

    configurations: list[ComponentConfiguration] = Field(
        min_length=1, description="the components to configure, each with its pid and properties"
    )
    xml: str | None = Field(
        default=None, description="an esf:configurations (or configurations) XML document"
    )

    @model_validator(mode="before")
    @classmethod
    def _read_xml(cls, data: Any) -> Any:
        return _structured_from_xml(data, "configurations", configurations_from_xml)

    @model_serializer(mode="wrap")
    def _dump_as_written(
        self, handler: SerializerFunctionWrapHandler, _info: SerializationInfo
    ) -> dict[str, Any]:
        return _as_written(self, handler, "configurations")


# --- Bundles ----------------------------------------------------------------------------------


class BundleProperties(Strict):
    """DEPLOY-V2 EXEC/start|stop/{bundleId}."""

    bundle_id: int = Field(ge=0, description="numeric OSGi bundle id")

    @field_validator("bundle_id", mode="before")
    @classmethod
    def _digits(cls, value: Any) -> Any:
        # Definitions ported from the device cloud carry the id as a string ("42").
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return value


# --- Packages -------------------------------------------------------------------------------


class FileType(StrEnum):
    DEPLOYMENT_PACKAGE = "DEPLOYMENT_PACKAGE"
    EXECUTABLE_SCRIPT = "EXECUTABLE_SCRIPT"


class PackageDownload(Strict):
    """DEPLOY-V2 EXEC/download: fetch (and by default install) a deployment package."""

    uri: DownloadUri = Field(
        description="where the device downloads the deployment package (http, https or ftp)"
    )
    name: Annotated[str, Field(min_length=1, max_length=256)] = Field(
        description="the package name, as DEPLOY-V2 GET packages lists it"
    )
    version: Annotated[str, Field(min_length=1, max_length=256)] = Field(description="its version")
    install: bool = Field(
        default=True, description="install it once downloaded (false: download only)"
    )
    reboot: bool = Field(default=False, description="reboot the device after the install")
    reboot_delay: Duration | None = Field(
        default=None, description="how long after the install it reboots"
    )
    username: Credential | None = Field(default=None, description="for the download server")
    password: Secret | None = Field(default=None, description="for the download server (a secret)")
    file_hash: FileHash | None = Field(default=None, description="ALGO:hex, e.g. MD5:46cb...")
    # strict=False: the YAML text `EXECUTABLE_SCRIPT` is the enum member of that name.
    file_type: Annotated[FileType, Field(strict=False)] = FileType.DEPLOYMENT_PACKAGE
    restart: bool = Field(default=False, description="download again even if the file exists")
    block_size: int | None = Field(default=None, gt=0, description="bytes per downloaded block")
    block_delay: Duration | None = Field(default=None, description="a pause between two blocks")
    block_timeout: Duration | None = Field(default=None, description="how long one block may take")
    notify_block_size: int | None = Field(
        default=None, gt=0, description="bytes between two progress notifications"
    )
    install_verifier_uri: DownloadUri | None = Field(
        default=None, description="a script the device downloads and runs to check the install"
    )


class PackageUninstall(Strict):
    """DEPLOY-V2 EXEC/uninstall."""

    name: Annotated[str, Field(min_length=1, max_length=256)] = Field(
        description="the package to remove, as DEPLOY-V2 GET packages lists it"
    )
    version: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        default=None, description="its version (default: the one installed)"
    )
    reboot: bool = Field(default=False, description="reboot the device after the uninstall")
    reboot_delay: Duration | None = Field(
        default=None, description="how long after the uninstall it reboots"
    )


# --- Asset Write ------------------------------------------------------------------------------

ChannelType = Literal["BOOLEAN", "BYTE_ARRAY", "DOUBLE", "INTEGER", "LONG", "FLOAT", "STRING"]
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


class ChannelWrite(Strict):
    """One channel value; BYTE_ARRAY values are base64 text."""

    name: Text = Field(description="the channel's name")
    type: ChannelType
    value: ScalarValue = Field(description="the value written, of the channel type")

    @model_validator(mode="after")
    def _value_fits_type(self) -> ChannelWrite:
        problem = _channel_value_problem(self.type, self.value)
        if problem:
            raise ValueError(f"channel {self.name!r}: {problem}")
        return self


def _channel_value_problem(kind: str, value: ScalarValue) -> str | None:
    if kind == "BOOLEAN":
        return None if isinstance(value, bool) else "a BOOLEAN value is true or false"
    if kind in ("INTEGER", "LONG"):
        low, high = _INT32 if kind == "INTEGER" else _INT64
        if isinstance(value, bool) or not isinstance(value, int):
            return f"an {kind} value is a whole number"
        return None if low <= value <= high else f"{value} does not fit in {kind}"
    if kind in ("DOUBLE", "FLOAT"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"a {kind} value is a number"
    if kind == "BYTE_ARRAY":
        if not isinstance(value, str):
            return "a BYTE_ARRAY value is base64 text"
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error:
            return f"{value!r} is not base64 text"
        return None
    return None if isinstance(value, str) else "a STRING value is text (quote it)"


class AssetWriteTarget(Strict):
    name: Text = Field(description="the asset's name (its PID)")
    channels: list[ChannelWrite] = Field(min_length=1, description="the channels written")


class AssetWrite(Strict):
    """ASSET-V1 EXEC/write: write channel values of the gateway's assets.

    Written as structured YAML (`assets`) or as the device cloud's deviceAssets XML (`xml`).
    """

    model_config = ConfigDict(json_schema_extra=_either_structured_or_xml("assets"))

    assets: list[AssetWriteTarget] = Field(
        min_length=1, description="the assets, each with the channels to write"
    )
    xml: str | None = Field(default=None, description="a deviceAssets XML document")

    @model_validator(mode="before")
    @classmethod
    def _read_xml(cls, data: Any) -> Any:
        return _structured_from_xml(data, "assets", assets_from_xml)

    @model_serializer(mode="wrap")
    def _dump_as_written(
        self, handler: SerializerFunctionWrapHandler, _info: SerializationInfo
    ) -> dict[str, Any]:
        return _as_written(self, handler, "assets")


# --- Keystores (KEYS-V1) ----------------------------------------------------------------------


class KeystoreCertificateCreate(Strict):
    keystore_id: Text = Field(description="keystore service PID, e.g. SSLKeystore")
    alias: Text = Field(description="the entry's alias in the keystore")
    certificate: Pem = Field(description="the certificate, PEM")


class KeystoreItemDelete(Strict):
    keystore_id: Text = Field(description="keystore service PID, e.g. SSLKeystore")
    alias: Text = Field(description="the entry to delete")


class KeystoreKeypairCreate(Strict):
    keystore_id: Text = Field(description="keystore service PID, e.g. SSLKeystore")
    alias: Text = Field(description="the new entry's alias")
    algorithm: Text = Field(examples=["RSA", "EC"], description="key algorithm: RSA or EC")
    size: int = Field(gt=0, examples=[2048, 4096], description="key size in bits")
    signature_algorithm: Text = Field(
        examples=["SHA256withRSA"], description="its self-signed certificate's signature algorithm"
    )
    attributes: Text = Field(description="the subject, e.g. CN=gw-0001,O=Acme,C=IT")


# --- Device certificates (no public contract; see README "Device certificate management") ----


class DeviceCertificateInstall(Strict):
    certificate: Pem = Field(description="the certificate, PEM")
    alias: Text | None = Field(default=None, description="its alias")
    keystore_id: Text | None = Field(
        default=None, description="the keystore (default: the device's)"
    )


class DeviceCertificateRevoke(Strict):
    alias: Text | None = Field(default=None, description="the alias of the certificate to revoke")
    certificate: Pem | None = Field(default=None, description="or the certificate itself, PEM")
    keystore_id: Text | None = Field(
        default=None, description="the keystore (default: the device's)"
    )

    @model_validator(mode="after")
    def _one_of(self) -> DeviceCertificateRevoke:
        if (self.alias is None) == (self.certificate is None):
            raise ValueError("give either 'alias' or 'certificate' of the certificate to revoke")
        return self


# --- Activity Submit (ESF; see README "Activity Submit") -------------------------------------


class ActivitySubmit(Strict):
    activity_uri: DownloadUri = Field(
        description="where the device downloads the activity (an archive)"
    )
    username: Credential | None = Field(default=None, description="for the download server")
    password: Secret | None = Field(default=None, description="for the download server (a secret)")
    file_hash: FileHash | None = Field(
        default=None, description="ALGO:hex of the download, checked by the device"
    )
    resume: bool = Field(default=False, description="resume a download that stopped")
    block_size: int | None = Field(default=None, gt=0, description="bytes per downloaded block")
    block_delay: Duration | None = Field(default=None, description="a pause between two blocks")
    block_timeout: Duration | None = Field(default=None, description="how long one block may take")
    notify_block_size: int | None = Field(
        default=None, gt=0, description="bytes between two progress notifications"
    )
    download_timeout: Duration | None = Field(
        default=None, description="how long the whole download may take"
    )
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = "INFO"
    resource_properties: dict[str, str] = Field(
        default_factory=dict, description="properties handed to the activity"
    )


# --- Steps --------------------------------------------------------------------------------------


class StepMode(StrEnum):
    SYNC = "sync"
    ASYNC = "async"


class StepBase(Strict):
    """What every step has: a name unique in its job, a reply timeout, typed properties."""

    mode: ClassVar[StepMode] = StepMode.SYNC

    name: Name = Field(description="unique in the job; status and the log name it")
    description: str | None = Field(default=None, description="free text")
    timeout: Duration = Field(
        default=DEFAULT_TIMEOUT,
        description="how long to wait for the device's reply",
        json_schema_extra={"default": format_duration(DEFAULT_TIMEOUT)},
    )


class AsyncStepBase(StepBase):
    """An asynchronous step: the device accepts, works, then notifies its completion."""

    mode: ClassVar[StepMode] = StepMode.ASYNC

    completion_timeout: Duration = Field(
        default=DEFAULT_COMPLETION_TIMEOUT,
        description="how long to wait for the device's completion notification",
        json_schema_extra={"default": format_duration(DEFAULT_COMPLETION_TIMEOUT)},
    )


class ActivitySubmitStep(AsyncStepBase):
    definition: Literal["Activity Submit"]
    properties: ActivitySubmit


class AssetWriteStep(StepBase):
    definition: Literal["Asset Write"]
    properties: AssetWrite


class BundleStartStep(StepBase):
    definition: Literal["Bundle Start"]
    properties: BundleProperties


class BundleStopStep(StepBase):
    definition: Literal["Bundle Stop"]
    properties: BundleProperties


class CommandExecutionStep(StepBase):
    definition: Literal["Command Execution"]
    properties: CommandExecution


class ConfigurationPutStep(StepBase):
    definition: Literal["Configuration Put"]
    properties: ConfigurationPut
    rollback: Literal["onFailure"] | None = Field(
        default=None,
        description="onFailure: take a snapshot before the put, and roll the device back to"
        " it when this step or a later one of the target fails",
    )
    verify: bool | None = Field(
        default=None,
        description="read back what the put wrote once Kura applied it; a difference fails"
        " the step",
    )


class DeviceCertificateInstallStep(StepBase):
    definition: Literal["Device Certificate Management Install"]
    properties: DeviceCertificateInstall


class DeviceCertificateRevokeStep(StepBase):
    definition: Literal["Device Certificate Management Revoke"]
    properties: DeviceCertificateRevoke


class KeystoreCertificateCreateStep(StepBase):
    definition: Literal["Keystore Certificate Create"]
    properties: KeystoreCertificateCreate


class KeystoreItemDeleteStep(StepBase):
    definition: Literal["Keystore Item Delete"]
    properties: KeystoreItemDelete


class KeystoreKeypairCreateStep(StepBase):
    definition: Literal["Keystore Keypair Create"]
    properties: KeystoreKeypairCreate


class PackageDownloadStep(AsyncStepBase):
    definition: Literal["Package Download / Install"]
    properties: PackageDownload
    verify: bool | None = Field(
        default=None,
        description="once installed, check that GET packages lists its name and version",
    )

    @model_validator(mode="after")
    def _verify_needs_install(self) -> PackageDownloadStep:
        if self.verify and not self.properties.install:
            raise ValueError(
                "verify: true checks the installed package, but this step only downloads it"
                " (install: false): drop verify, or install"
            )
        return self


class PackageUninstallStep(AsyncStepBase):
    definition: Literal["Package Uninstall"]
    properties: PackageUninstall


Step = Annotated[
    ActivitySubmitStep
    | AssetWriteStep
    | BundleStartStep
    | BundleStopStep
    | CommandExecutionStep
    | ConfigurationPutStep
    | DeviceCertificateInstallStep
    | DeviceCertificateRevokeStep
    | KeystoreCertificateCreateStep
    | KeystoreItemDeleteStep
    | KeystoreKeypairCreateStep
    | PackageDownloadStep
    | PackageUninstallStep,
    Field(discriminator="definition"),
]
"""One step of a job, its properties typed by its `definition`."""

STEP_TYPES: tuple[type[StepBase], ...] = get_args(get_args(Step)[0])


def definition_of(step_type: type[StepBase]) -> str:
    """The definition name a step model is written with (`Bundle Stop`)."""
    name: str = get_args(step_type.model_fields["definition"].annotation)[0]
    return name


def properties_of(step_type: type[StepBase]) -> type[Strict]:
    """The model of a step definition's properties."""
    kind: type[Strict] = step_type.model_fields["properties"].annotation  # type: ignore[assignment]
    return kind


CATALOGUE: dict[str, type[StepBase]] = {definition_of(t): t for t in STEP_TYPES}
"""Step definition display name -> step model, in the order of DESIGN's catalogue."""


def dump_steps(steps: Iterable[StepBase]) -> list[dict[str, Any]]:
    """Steps as a frozen job records them: the manifest's spelling and form."""
    return [step.model_dump(mode="json", by_alias=True, exclude_none=True) for step in steps]
