"""Requests handed from the command line to the `watch` daemons that own the state.

Where requests go is the state's owners model's answer (`state.ownership`). One state
directory has one owner. While a daemon owns it, `jobrunner start/stop/reconcile`
do not dispatch themselves: they drop a request file into `STATE/requests/`, the daemon acts
on it on its own thread and answers with a reply file beside it.

With a state database shared by several runners, each runner has its own folder of
requests, `requests/CLIENT_ID/`: a start or stop goes to the owner of the job (a job nobody
owns, to the runner that owns the fewest), a reconcile to every runner alive (each
reconciles the jobs it owns).

    requests/[CLIENT_ID/]ID.request.json
                               {"action": "start" | "stop" | "reconcile" | "approve",
                                "scope", "name",
                                "options": {"cancel": bool, "drain": seconds}  (stop)
                                           {"targets": [client id, ...], "reset": bool,
                                            "fromStep": step, "enqueue": bool} (start)
                                           {"wave": name or null, "by": who} (approve)}
    requests/[CLIENT_ID/]ID.reply.json
                               {"result": {...}} or {"error": "message"}

Both are written atomically. A request file that is not one of these shapes is answered with
an error and removed: the directory is input like any other.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobrunner.engine.core.executions import MAX_DRAIN
from jobrunner.errors import JobError, StateError
from jobrunner.state.journal import write_json
from jobrunner.state.layout import StateDir, safe_name

ACTIONS = ("start", "stop", "reconcile", "approve")
MAX_BY = 256
"""Characters of who approved a wave, at most."""
REQUEST = ".request.json"
REPLY = ".reply.json"


@dataclass(frozen=True)
class Request:
    id: str
    action: str
    scope: str | None
    name: str | None
    cancel: bool = False
    drain: float | None = None
    targets: tuple[str, ...] = ()
    reset: bool = False
    from_step: int | None = None
    enqueue: bool = False
    inbox: str | None = None
    """The runner whose inbox it came in (a state directory has one inbox, whoever asks)."""
    wave: str | None = None
    by: str = ""


def owning_daemon(state: StateDir | Path) -> StateDir | None:
    """The state when `watch` daemons run for it (the one that owns the directory, or any
    runner alive on the database): `start`, `stop` and `reconcile` then hand their request
    over (`submit`); None: they act themselves."""
    if not isinstance(state, StateDir):
        state = StateDir(state)
    return state if state.owners.daemon_runs() else None


def submit(
    state: StateDir,
    action: str,
    scope: str | None = None,
    name: str | None = None,
    timeout: float = 30.0,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Hand a request to the daemon (with several runners: to those it concerns, see the
    module docstring) and wait for the answer; JobError with its error."""
    inboxes = state.owners.inboxes(action, (scope, name) if scope and name else None)
    if not inboxes:  # every runner stopped since the command looked
        raise JobError(
            f"no runner of the {state.describe()} is alive to take the request;"
            " run the command again: it acts itself"
        )
    answers = [_submit(state, inbox, action, scope, name, timeout, options) for inbox in inboxes]
    if len(answers) == 1:
        return answers[0]
    merged: dict[str, Any] = {}
    for answer in answers:  # a reconcile: each runner started what it owns
        for key, value in answer.items():
            merged.setdefault(key, []).extend(value if isinstance(value, list) else [value])
    return merged


def _submit(
    state: StateDir,
    inbox: str | None,
    action: str,
    scope: str | None,
    name: str | None,
    timeout: float,
    options: dict[str, Any] | None,
) -> dict[str, Any]:
    # Oldest first by name: the time first, then what makes it unique.
    request_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
    folder = state.owners.inbox(inbox)
    storage = state.storage
    write_json(
        storage,
        folder / f"{request_id}{REQUEST}",
        {"action": action, "scope": scope, "name": name, "options": options or {}},
        durable=False,
    )
    reply = folder / f"{request_id}{REPLY}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if storage.exists(reply):
            answer = json.loads(storage.read(reply))
            storage.remove(reply)
            if "error" in answer:
                raise JobError(str(answer["error"]))
            result: dict[str, Any] = answer.get("result", {})
            return result
        time.sleep(0.05)
    storage.remove(folder / f"{request_id}{REQUEST}")
    who = f"the runner {inbox}" if inbox else "the watch daemon"
    raise JobError(
        f"{who} that owns the {state.describe()} did not answer within {timeout:g}s;"
        " is it running and healthy? (see its log)"
    )


def pending(state: StateDir, inbox: str | None = None) -> list[Request]:
    """Requests waiting for the daemon (for the runner `inbox`), oldest first; malformed ones
    are answered and removed."""
    folder = state.owners.inbox(inbox)
    storage = state.storage
    found = []
    for file in storage.children(folder):
        if not file.endswith(REQUEST):
            continue
        request_id = file[: -len(REQUEST)]
        try:
            found.append(_read(storage.read(folder / file), request_id, inbox))
        except FileNotFoundError:
            continue  # taken back by its command (it gave up waiting)
        except (ValueError, StateError) as error:
            _reply(folder, state, request_id, {"error": f"malformed request {file}: {error}"})
            storage.remove(folder / file)
    return found


def _read(data: bytes, request_id: str, inbox: str | None) -> Request:
    raw = json.loads(data)
    if not isinstance(raw, dict) or raw.get("action") not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
    scope, name = raw.get("scope"), raw.get("name")
    if raw["action"] != "reconcile":
        if not isinstance(scope, str) or not isinstance(name, str):
            raise ValueError("start, stop and approve name a job: scope and name")
        safe_name(scope, "scope")
        safe_name(name, "job")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise ValueError("options is a mapping")
    cancel, drain = options.get("cancel", False), options.get("drain")
    if not isinstance(cancel, bool):
        raise ValueError("options.cancel is true or false")
    if drain is not None and (
        isinstance(drain, bool) or not isinstance(drain, int | float) or not 0 <= drain <= MAX_DRAIN
    ):
        raise ValueError(f"options.drain is a number of seconds, 0 to {MAX_DRAIN:g}")
    targets = options.get("targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise ValueError("options.targets is a list of client ids")
    if len(targets) > 10_000:
        raise ValueError("options.targets lists at most 10,000 client ids")
    reset, enqueue = options.get("reset", False), options.get("enqueue", False)
    if not isinstance(reset, bool) or not isinstance(enqueue, bool):
        raise ValueError("options.reset and options.enqueue are true or false")
    from_step = options.get("fromStep")
    if from_step is not None and (
        isinstance(from_step, bool) or not isinstance(from_step, int) or from_step < 0
    ):
        raise ValueError("options.fromStep is a step index, counted from 0")
    wave, by = _approval(raw["action"], options)
    return Request(
        request_id,
        raw["action"],
        scope,
        name,
        cancel,
        None if drain is None else float(drain),
        tuple(targets),
        reset,
        from_step,
        enqueue,
        inbox,
        wave,
        by,
    )


def _approval(action: str, options: dict[str, Any]) -> tuple[str | None, str]:
    """The wave and who approves it, of an approve request."""
    wave, by = options.get("wave"), options.get("by", "")
    if wave is not None:
        if not isinstance(wave, str):
            raise ValueError("options.wave is a wave's name")
        safe_name(wave, "wave")
    if not isinstance(by, str) or len(by) > MAX_BY or not by.isprintable():
        raise ValueError(f"options.by is who approves: printable, {MAX_BY} characters at most")
    if action == "approve" and not by:
        raise ValueError("options.by says who approves")
    return wave, by


def answer(
    state: StateDir,
    request: Request,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    folder = state.owners.inbox(request.inbox)
    _reply(folder, state, request.id, {"error": error} if error is not None else {"result": result})
    state.storage.remove(folder / f"{request.id}{REQUEST}")


def _reply(folder: Path, state: StateDir, request_id: str, body: dict[str, Any]) -> None:
    write_json(state.storage, folder / f"{request_id}{REPLY}", body, durable=False)
