"""CMD-V1: `EXEC/command`, as Kura's CommandCloudApp answers it (kura-protocol.md §4.1).

- exactly one resource, `command` (another → 404, none or more → 400);
- the command service must be enabled (`command.enable`, else 500) and the password must
  match `command.password.value` (absent and empty count as "no password"; else 400);
- arguments `command.argument0…` stop at the first missing or empty one, environment pairs
  `command.environment.pair0…` at the first missing one;
- `command.timeout` is INT32 seconds (default: the `command.timeout` setting, 60); a command
  that runs longer replies 200 with `command.timedout` true and no exit code;
- a non-zero exit replies 500 with `response.exception.message` = stderr and the command
  metrics; `command.run.async` replies 200 at once, without output.
A metric of the wrong type fails the way Kura's casts do: 500 without a message.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobrunner.device.payload import KuraPayload, Metric, MetricType
from jobrunner.simulator import shell
from jobrunner.simulator.apps.base import (
    Call,
    Handler,
    KuraError,
    Reply,
    bool_metric,
    int32_metric,
    string_metric,
)
from jobrunner.simulator.catalog import COMMAND_PID
from jobrunner.simulator.state import DeviceState

APP_ID = "CMD-V1"
PID = COMMAND_PID


def _password_ok(configured: str | None, received: str | None) -> bool:
    if not configured:
        return received is None or received == ""
    return configured == received


def _metrics(result: shell.Result, timed_out: bool) -> dict[str, Metric]:
    metrics = {
        "command.stderr": Metric(MetricType.STRING, result.stderr),
        "command.stdout": Metric(MetricType.STRING, result.stdout),
    }
    if timed_out:
        metrics["command.timedout"] = Metric(MetricType.BOOL, True)
    else:
        metrics["command.exit.code"] = Metric(MetricType.INT32, result.exit_code)
        metrics["command.timedout"] = Metric(MetricType.BOOL, False)
    return metrics


@dataclass(frozen=True, slots=True)
class _Command:
    line: str
    environment: dict[str, str]
    directory: str
    timeout: int
    run_async: bool


def _read(payload: KuraPayload, state: DeviceState) -> _Command:
    """The request's command, read with Kura's rules (see the module docstring)."""
    command = string_metric(payload, "command.command")
    if command is None or not command.strip():
        raise KuraError(400, "null command")
    arguments: list[str] = []
    while argument := string_metric(payload, f"command.argument{len(arguments)}"):
        arguments.append(argument)
    environment: dict[str, str] = {}
    index = 0
    while (pair := string_metric(payload, f"command.environment.pair{index}")) is not None:
        key, _, value = pair.partition("=")
        if key:
            environment[key] = value
        index += 1
    directory = string_metric(payload, "command.working.directory") or (
        state.setting(PID, "command.working.directory") or "/tmp"
    )
    timeout = int32_metric(payload, "command.timeout")
    if timeout is None:
        timeout = int(state.setting(PID, "command.timeout") or "60")
    return _Command(
        " ".join([command, *arguments]),
        environment,
        directory,
        timeout,
        bool_metric(payload, "command.run.async") is True,
    )


def execute(call: Call) -> Reply | None:
    """EXEC command."""
    device, request = call.device, call.request
    state = device.state
    if state.setting(PID, "command.enable") != "true":
        raise KuraError(500, "The command service is not enabled")
    if len(request.resources) != 1:
        raise KuraError(400, f"expected one resource, found {len(request.resources)}")
    if request.resources[0] != "command":
        raise KuraError(404, f"resource {request.resources[0]!r} not found")
    received = string_metric(request.payload, "command.password")
    if not _password_ok(state.setting(PID, "command.password.value"), received):
        raise KuraError(400, "Password required but not correct and/or missing")
    command = _read(request.payload, state)
    result = shell.run(
        command.line,
        shell.Shell(
            device.client_id, command.directory, command.environment, state.packages, device.uptime
        ),
    )
    if result.reboot:
        device.reboot(1.0)
    if command.run_async:
        return Reply()
    if 0 < command.timeout < result.seconds:
        # Kura's executor kills the process at the timeout: output so far, no exit code.
        reply = Reply(metrics=_metrics(result, timed_out=True))
        device.reply_later(request, reply, command.timeout)
        return None
    reply = Reply(metrics=_metrics(result, timed_out=False))
    if result.exit_code != 0:
        reply.code = 500
        reply.message = result.stderr
    if result.seconds > 0:
        device.reply_later(request, reply, result.seconds)
        return None
    return reply


HANDLERS: dict[str, Handler] = {"EXEC": execute}
