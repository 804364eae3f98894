"""Every error jobrunner raises, in one tree; each carries what is wrong, where, and what
would be right.

    JobrunnerError                anything the CLI reports without a traceback (exit code 1)
    ├── ConfigError               an option, environment variable or configuration file is wrong
    ├── ManifestError             a manifest does not read or validate (reported as FILE:LINE)
    │   ├── YamlError             the YAML itself: syntax, tags, aliases, size, encoding
    │   └── XmlFormError          an `xml:` input of Configuration Put or Asset Write
    ├── CronSyntaxError           a Quartz cron expression (exit code 2 for `cron next`)
    ├── SecretError               a secret reference has no value (nothing is sent)
    ├── StateError                the state directory cannot be used as it is
    │   ├── StateVersionError     a record was written by a newer jobrunner
    │   ├── StateLockedError      another process owns the state directory
    │   └── LeaseLostError        a job's lease is no longer this runner's (several runners)
    ├── JobError                  a request about a job cannot be carried out (unknown, running)
    │   └── NothingToDo           a start that would send nothing: every target is done (exit 0)
    └── DeviceError               the device layer: MQTT and the Kura protocol
        ├── ConnectError          the broker cannot be reached, or refused the connection
        ├── NotSentError          a request did not leave
        │   ├── NotConnectedError not connected and subscribed for its account
        │   └── ClientBusyError   the in-flight window is full
        ├── OperationError        step properties that cannot be put on the wire
        ├── PayloadError          a payload that does not encode or decode
        └── TopicError            a topic that is not one of Kura's

The errors that pydantic validators raise (XmlFormError, CronSyntaxError) and the codec's are
also ValueErrors, as pydantic and callers of the codec expect.
"""

from __future__ import annotations


class JobrunnerError(Exception):
    """A failure the user can act on; its message says what, where, and what to do."""

    exit_code = 1


class ConfigError(JobrunnerError):
    pass


class BadValueError(ConfigError):
    """A setting's value that cannot be right (a broker URL without a host, an unknown key of
    the configuration file): exit 2, as for any bad value on the command line."""

    exit_code = 2


class ManifestError(JobrunnerError):
    pass


class YamlError(ManifestError):
    """A document that cannot be read, with the 1-based line to blame."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class XmlFormError(ManifestError, ValueError):
    """An XML input that is not one of the accepted forms; the message says what is wrong."""


class CronSyntaxError(JobrunnerError, ValueError):
    """An expression Quartz would not run; str() says which field, what is wrong, what is right.

    `field` is the field's name (None when the problem spans fields or is the whole
    expression); `quartz_parses` is True for the few expressions Quartz's reader accepts but
    its evaluator cannot run (see `jobrunner.cron.syntax`).
    """

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None, quartz_parses: bool = False):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.quartz_parses = quartz_parses


class SecretError(JobrunnerError):
    """A secret reference that cannot be resolved now; the message never holds a value."""


class StateError(JobrunnerError):
    pass


class StateVersionError(StateError):
    pass


class StateLockedError(StateError):
    pass


class LeaseLostError(StateError):
    """The lease of a job is no longer this runner's (expired, or taken over): nothing more
    is written or sent for it. `jobs`: the (scope, job) of each lease lost."""

    def __init__(self, message: str, jobs: frozenset[tuple[str, str]] = frozenset()) -> None:
        super().__init__(message)
        self.jobs = jobs


class JobError(JobrunnerError):
    pass


class NothingToDo(JobError):  # noqa: N818 - an answer, not a failure
    """A start that would send nothing: every target it covers is done. Not a failure (exit
    0: every target is PROCESS_OK), but no execution is recorded, and the command says so."""

    exit_code = 0


class NotRunning(JobError):  # noqa: N818 - an answer, not a failure
    """A stop of a job that has no running execution: what the operator wanted holds already
    (exit 0), and the command says what its last execution did."""

    exit_code = 0


class DeviceError(JobrunnerError):
    """The device layer cannot do what was asked; the message says why."""


class ConnectError(DeviceError):
    """The broker could not be reached, refused the connection or a subscription."""


class NotSentError(DeviceError):
    """A request did not leave: nothing was published, it may be tried again."""


class NotConnectedError(NotSentError):
    """Not connected, or not subscribed for the request's account."""


class ClientBusyError(NotSentError):
    """The in-flight window is full."""


class OperationError(DeviceError, ValueError):
    """Step properties that cannot be put on the wire (e.g. a value too large for its type)."""


class PayloadError(DeviceError, ValueError):
    """A Kura payload that cannot be encoded or decoded."""


class TopicError(DeviceError, ValueError):
    """A topic that is not one of Kura's control topics."""
