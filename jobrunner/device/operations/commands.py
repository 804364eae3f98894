"""Command Execution: `CMD-V1 EXEC/command` (kura-protocol.md §4.1).

A command fails the step when it exits non-zero (recent Kura replies 500 with stderr as the
exception message; older Kura replies 200 with `command.exit.code`) and when it times out on
the device (`command.timedout` true, still a 200 reply).
"""

from __future__ import annotations

import math
from typing import ClassVar

from jobrunner.device.model import FailureKind, Request
from jobrunner.device.operations.base import (
    Operation,
    Outcome,
    int_metric,
    response_code,
    secret_string,
    tail,
    text_metric,
)
from jobrunner.device.payload import KuraPayload, Metric
from jobrunner.errors import OperationError, PayloadError
from jobrunner.manifests.steps import CommandExecution, CommandExecutionStep

SECRETS = frozenset({"command.password"})


class ExecuteCommand(Operation[CommandExecution]):
    step = CommandExecutionStep
    failure_hints: ClassVar[dict[int, str]] = {
        400: "the command is empty, or the command password is wrong",
    }

    @property
    def app_id(self) -> str:
        return self.settings.command_app

    def request(self, operation_id: int = 0) -> Request:
        p = self.properties
        metrics: dict[str, Metric] = {"command.command": Metric.string(p.command)}
        for index, argument in enumerate(p.arguments):
            metrics[f"command.argument{index}"] = Metric.string(argument)
        for index, (name, value) in enumerate(p.environment.items()):
            metrics[f"command.environment.pair{index}"] = Metric.string(f"{name}={value}")
        if p.working_directory is not None:
            metrics["command.working.directory"] = Metric.string(p.working_directory)
        if p.stdin is not None:
            metrics["command.stdin"] = Metric.string(p.stdin)
        password = secret_string(p.password)
        if password is not None:
            metrics["command.password"] = password
        if p.command_timeout is not None:
            metrics["command.timeout"] = Metric.int32(self.timeout_seconds())
        metrics["command.run.async"] = Metric.boolean(p.run_async)
        return Request(self.app_id, "EXEC", ("command",), metrics, secrets=SECRETS)

    def timeout_seconds(self) -> int:
        """`commandTimeout` in whole seconds (Kura's unit), rounded up, at least 1."""
        assert self.properties.command_timeout is not None
        seconds = max(1, math.ceil(self.properties.command_timeout.total_seconds()))
        if seconds >= 2**31:
            raise OperationError(f"commandTimeout of {seconds}s does not fit an INT32")
        return seconds

    def reply(self, payload: KuraPayload, operation_id: int = 0) -> Outcome:
        code = response_code(payload)
        exit_code = int_metric(payload, "command.exit.code")
        stdout = text_metric(payload, "command.stdout")
        stderr = text_metric(payload, "command.stderr")
        if code != 200:
            if code is not None and exit_code is not None and exit_code != 0:
                output = tail(stderr) or tail(stdout) or "no output"
                return Outcome.failed(
                    f"device replied {code}: command exited with code {exit_code}: {output}",
                    FailureKind.DEVICE_ERROR,
                    code,
                )
            # as every operation: the response code kept, a missing application named
            return super().reply(payload, operation_id)
        try:
            timed_out = payload.boolean("command.timedout", False)
        except PayloadError:
            timed_out = text_metric(payload, "command.timedout") == "true"
        if timed_out:
            limit = f" after {self.timeout_seconds()}s" if self.properties.command_timeout else ""
            output = tail(stdout)
            return Outcome.failed(
                f"command timed out on the device{limit}"
                + (f"; last output: {output}" if output else "")
            )
        if exit_code is not None and exit_code != 0:
            output = tail(stderr) or tail(stdout) or "no output"
            return Outcome.failed(f"command exited with code {exit_code}: {output}")
        if self.properties.run_async:
            return Outcome.ok("command started on the device (runAsync: its output is not awaited)")
        output = tail(stdout)
        exited = "exited with code 0" if exit_code == 0 else "completed"
        return Outcome.ok(f"command {exited}" + (f"; stdout: {output}" if output else ""))
