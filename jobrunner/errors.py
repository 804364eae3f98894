"""Errors that reach the user, each carrying what is wrong, where, and what would be right.

JobrunnerError            anything the CLI reports without a traceback (exit code 1)
├── ConfigError           an option, environment variable or configuration file is wrong
├── ManifestsInvalid      `validate` found errors (the diagnostics are printed first)
├── StateError            the state directory cannot be used as it is
│   ├── StateVersionError a record was written by a newer jobrunner
│   └── StateLockedError  another process owns the state directory
└── JobError              a request about a job cannot be carried out (unknown, running...)
"""

from __future__ import annotations


class JobrunnerError(Exception):
    """A failure the user can act on; its message says what, where, and what to do."""

    exit_code = 1


class ConfigError(JobrunnerError):
    pass


class StateError(JobrunnerError):
    pass


class StateVersionError(StateError):
    pass


class StateLockedError(StateError):
    pass


class JobError(JobrunnerError):
    pass
