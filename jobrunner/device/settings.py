"""How the runner reaches its MQTT broker: URL, client id, credentials, TLS files.

Settings come from explicit values (command-line options), else from the environment, else
from defaults — never from manifests, which are shared in git:

    JOBRUNNER_BROKER           mqtt://host:port or mqtts://host:port (default mqtt://localhost:1883)
    JOBRUNNER_CLIENT_ID        the runner's MQTT client id (default jobrunner-<hostname>)
    JOBRUNNER_MQTT_USERNAME    JOBRUNNER_MQTT_PASSWORD
    JOBRUNNER_MQTT_CA_FILE     CA certificates (PEM) that sign the broker's certificate
    JOBRUNNER_MQTT_CERT_FILE   JOBRUNNER_MQTT_KEY_FILE   client certificate and key (PEM)

The client id must be stable: devices address their replies to it, and a reply sent to the
previous process can then reach the next one. The password never appears in repr, str or
error messages.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from jobrunner.errors import BadValueError, ConfigError
from jobrunner.manifests.fields import CLIENT_ID_PATTERN

DEFAULT_BROKER = "mqtt://localhost:1883"
DEFAULT_KEEPALIVE = 30
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}

ENV_BROKER = "JOBRUNNER_BROKER"
ENV_CLIENT_ID = "JOBRUNNER_CLIENT_ID"
ENV_USERNAME = "JOBRUNNER_MQTT_USERNAME"
ENV_PASSWORD = "JOBRUNNER_MQTT_PASSWORD"
ENV_CA_FILE = "JOBRUNNER_MQTT_CA_FILE"
ENV_CERT_FILE = "JOBRUNNER_MQTT_CERT_FILE"
ENV_KEY_FILE = "JOBRUNNER_MQTT_KEY_FILE"

# The client id is a topic segment of every reply ($EDC/{account}/{client id}/...): the
# runner's obeys the rule of the devices' (DeviceList clientId).
_CLIENT_ID_RE = re.compile(CLIENT_ID_PATTERN)
_CLIENT_ID_HINT = "use 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"


def default_client_id() -> str:
    """`jobrunner-<hostname>`, with characters a topic segment cannot hold replaced, and the
    dots of a domain name too: RabbitMQ's MQTT plugin turns a '.' into a topic level, and the
    replies to `jobrunner-host.example.com` would never come back."""
    host = re.sub(r"[^A-Za-z0-9_:-]", "-", socket.gethostname()) or "localhost"
    return f"jobrunner-{host}"[:128]


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Where and how the runner connects. Build with `from_url` or `resolve`."""

    host: str
    port: int
    tls: bool = False
    client_id: str = field(default_factory=default_client_id)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive: int = DEFAULT_KEEPALIVE
    requester_id: str | None = None
    """The `requester.client.id` of the requests, where replies come back: the client id
    (None), or one id shared by several runners, so that any of them receives the replies
    of a job it took over."""
    clean_session: bool = False
    """A session the broker forgets when the client goes: for a short-lived reader (`plan
    --live`), which must neither take the runner's session nor leave one behind."""

    def __post_init__(self) -> None:
        if not _CLIENT_ID_RE.match(self.client_id):
            raise ConfigError(
                f"MQTT client id {self.client_id!r} cannot be used: it is a segment of the"
                f" reply topics; {_CLIENT_ID_HINT}"
            )
        if self.requester_id is not None and not _CLIENT_ID_RE.match(self.requester_id):
            raise ConfigError(
                f"requester id {self.requester_id!r} cannot be used: it is a segment of the"
                f" reply topics; {_CLIENT_ID_HINT}"
            )
        if not 0 <= self.keepalive <= 65535:
            raise ConfigError(f"MQTT keepalive {self.keepalive}s is outside 0..65535 seconds")
        if not 0 < self.port < 65536:
            raise ConfigError(f"broker port {self.port} is outside 1..65535")
        if self.password is not None and not self.username:
            raise ConfigError(
                f"a broker password is set but no username; set {ENV_USERNAME} as well"
            )
        if self.key_file is not None and self.cert_file is None:
            raise ConfigError(
                f"a client key ({self.key_file}) is set without its certificate;"
                f" set {ENV_CERT_FILE} as well"
            )
        tls_files = [f for f in (self.ca_file, self.cert_file, self.key_file) if f is not None]
        if tls_files and not self.tls:
            raise ConfigError(
                f"TLS files are set ({', '.join(map(str, tls_files))}) but the broker URL"
                f" {self.url} is plain MQTT; use mqtts://{self._netloc()}"
            )
        for path in tls_files:
            if not path.is_file():
                raise ConfigError(f"TLS file {path} does not exist or is not a file")

    @property
    def requester(self) -> str:
        """Where the replies are addressed: the requester id, else the client id."""
        return self.requester_id or self.client_id

    @property
    def shares_requester(self) -> bool:
        """Other runners receive the same replies (a requester id other than the client id)."""
        return self.requester != self.client_id

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, **values: object) -> BrokerSettings:
        """Settings for `mqtt://host[:port]` or `mqtts://host[:port]`, plus `values`."""
        host, port, tls = parse_broker_url(url)
        return cls(host=host, port=port, tls=tls, **values)  # type: ignore[arg-type]

    @classmethod
    def resolve(
        cls,
        broker: str | None = None,
        *,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        keepalive: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> BrokerSettings:
        """Explicit values beat environment variables, which beat the defaults."""
        environ = os.environ if env is None else env

        def pick(value: str | Path | None, name: str) -> str | None:
            if value is not None and str(value) != "":
                return str(value)
            found = environ.get(name)
            return found if found else None

        def path(value: str | Path | None, name: str) -> Path | None:
            chosen = pick(value, name)
            return Path(chosen).expanduser() if chosen else None

        settings = cls.from_url(
            pick(broker, ENV_BROKER) or DEFAULT_BROKER,
            username=pick(username, ENV_USERNAME),
            password=pick(password, ENV_PASSWORD),
            ca_file=path(ca_file, ENV_CA_FILE),
            cert_file=path(cert_file, ENV_CERT_FILE),
            key_file=path(key_file, ENV_KEY_FILE),
            keepalive=DEFAULT_KEEPALIVE if keepalive is None else keepalive,
        )
        chosen_id = pick(client_id, ENV_CLIENT_ID)
        return replace(settings, client_id=chosen_id) if chosen_id else settings

    # -- presentation ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The broker URL, without credentials: safe to print."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self._netloc()}"

    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __repr__(self) -> str:
        shown = [f"url={self.url!r}", f"client_id={self.client_id!r}"]
        if self.username:
            shown.append(f"username={self.username!r}")
        if self.password is not None:
            shown.append("password='***'")
        for name in ("ca_file", "cert_file", "key_file"):
            value = getattr(self, name)
            if value is not None:
                shown.append(f"{name}='{value}'")
        shown.append(f"keepalive={self.keepalive}")
        return f"BrokerSettings({', '.join(shown)})"

    def __str__(self) -> str:
        return f"{self.url} as {self.client_id}"


def parse_broker_url(url: str) -> tuple[str, int, bool]:
    """(host, port, tls) of a broker URL; BadValueError saying what is wrong otherwise, with the
    URL that was probably meant."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise BadValueError(
            f"broker URL {_redacted(url)!r} is not valid ({error}); write mqtt://host:port"
            + _meant(url)
        ) from None
    if parts.scheme not in DEFAULT_PORTS:
        raise BadValueError(
            f"broker URL {_redacted(url)!r} has scheme {parts.scheme or 'none'!r};"
            " write mqtt://host:port, or mqtts://host:port for TLS" + _meant(url)
        )
    if parts.username is not None or parts.password is not None:
        raise BadValueError(
            f"broker URL {_redacted(url)!r} carries credentials, which would show in logs and"
            f" process lists; set {ENV_USERNAME} and {ENV_PASSWORD} instead"
        )
    if not parts.hostname:
        raise BadValueError(
            f"broker URL {_redacted(url)!r} has no host; write mqtt://host:port" + _meant(url)
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BadValueError(
            f"broker URL {_redacted(url)!r} has a path or query; write only mqtt://host:port"
            + _meant(url)
        )
    port = DEFAULT_PORTS[parts.scheme] if port is None else port
    return parts.hostname, port, parts.scheme == "mqtts"


_LOOSE_URL = re.compile(
    r"^(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)(?::/*|/+))?(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:]+\])"
    r"(?::(?P<port>\d{1,5}))?/*$"
)


def _meant(url: str) -> str:
    """`; did you mean mqtt://localhost:18831?` for a URL with a mistyped or missing scheme,
    or a slash too few; '' when no valid URL is close."""
    text = url.strip()
    found = _LOOSE_URL.match(text)
    if found is None or "@" in text:
        return ""
    scheme, host, port = found["scheme"], found["host"], found["port"]
    if scheme is not None and port is None and host.isdigit():
        scheme, host, port = None, scheme, host  # `localhost:18831`: a host and its port
    schemes = list(DEFAULT_PORTS)
    if scheme is None or scheme.lower() not in schemes:
        close = difflib.get_close_matches((scheme or "mqtt").lower(), schemes, n=1, cutoff=0.4)
        scheme = close[0] if close else "mqtt"
    guess = f"{scheme.lower()}://{host}" + (f":{port}" if port else "")
    if guess == text:
        return ""
    try:
        parse_broker_url(guess)
    except BadValueError:
        return ""
    return f"; did you mean {guess}?"


def _redacted(url: str) -> str:
    """`url` with anything before an '@' in its authority hidden."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1***@", url.strip())
