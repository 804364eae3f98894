"""The dashboard as an ASGI application: pages, the JSON API, `/metrics` and the health
checks (`/livez`, `/readyz` and its first name `/healthz`).

Read-only: no route changes anything (a POST gets 405). Every handler is `async` and runs on
the one event-loop thread of the server, which alone touches the `FleetReader`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobrunner.engine.status import backlog_view
from jobrunner.manifests import ManifestSet
from jobrunner.manifests.selectors import Selector, SelectorError, parse_selector
from jobrunner.state.layout import safe_name
from jobrunner.state.stores.base import Storage
from jobrunner.state.targets import TargetStatus
from jobrunner.web import pages
from jobrunner.web.auth import TokenGate
from jobrunner.web.health import Health
from jobrunner.web.metrics import RunnerFacts
from jobrunner.web.views import DEFAULT_LIMIT, MAX_LIMIT, TargetFilter, Views

LOG_TAIL = 256 * 1024
"""Bytes of an execution's log sent first when a page opens it (the rest is older)."""
LOG_POLL = 0.5  # seconds between looks at a followed log
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class Runner(RunnerFacts, Protocol):
    """What the app asks the daemon it runs in."""

    @property
    def client_id(self) -> str: ...

    def manifests(self) -> ManifestSet | None: ...


@dataclass
class Dependencies:
    views: Views
    runner: Runner
    health: Health
    metrics: CollectorRegistry


class BadQueryError(Exception):
    """A query parameter that cannot be used: answered 400 with what would be right."""


def create_app(deps: Dependencies, host: str, token: str | None) -> Starlette:
    """The dashboard for `deps`, listening on `host` (loopback needs no token)."""
    static = Path(str(resources.files("jobrunner.web") / "static"))

    async def overview(_: Request) -> Response:
        return HTMLResponse(pages.overview_page())

    async def job_page(request: Request) -> Response:
        scope, name = _job_key(request)
        if not deps.views.exists(scope, name):
            return _not_found(f"no job {scope}/{name} is recorded")
        return HTMLResponse(pages.job_page(scope, name))

    async def devices_page(_: Request) -> Response:
        return HTMLResponse(pages.devices_page())

    async def jobs(_: Request) -> Response:
        return JSONResponse(deps.views.jobs())

    async def job(request: Request) -> Response:
        scope, name = _job_key(request)
        view = deps.views.job(scope, name, _target_filter(request))
        if view is None:
            return _not_found(f"no job {scope}/{name} is recorded")
        view["owner"] = deps.runner.client_id
        return JSONResponse(view)

    async def devices(request: Request) -> Response:
        return JSONResponse(deps.views.devices(deps.runner.manifests(), _selector(request)))

    async def notifications(_: Request) -> Response:
        return JSONResponse(backlog_view(deps.views.reader.state, deps.runner.client_id))

    async def runner(_: Request) -> Response:
        return JSONResponse(
            {
                "clientId": deps.runner.client_id,
                "brokerConnected": deps.runner.broker_connected(),
                "inFlight": deps.runner.in_flight(),
            }
        )

    async def log(request: Request) -> Response:
        path = _log_path(request, deps)
        if path is None:
            return _not_found("no such execution")
        offset = _integer(request, "offset", -1, minimum=-1)
        lines, end = _read_log(deps.views.reader.state.storage, path, offset)
        return JSONResponse({"offset": end, "lines": lines})

    async def log_stream(request: Request) -> Response:
        path = _log_path(request, deps)
        if path is None:
            return _not_found("no such execution")
        last = request.headers.get("last-event-id", "")
        start = int(last) if last.isdigit() else -1
        return StreamingResponse(
            _follow_log(request, deps.views.reader.state.storage, path, start),
            media_type="text/event-stream",
            headers={"cache-control": "no-store"},
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(deps.metrics), media_type=CONTENT_TYPE_LATEST)

    async def readyz(_: Request) -> Response:
        return _health(deps.health.problems())

    async def livez(_: Request) -> Response:
        return _health(deps.health.stuck())

    routes = [
        Route("/", overview),
        Route("/jobs/{scope}/{name}", job_page),
        Route("/devices", devices_page),
        Route("/api/v1/jobs", jobs),
        Route("/api/v1/jobs/{scope}/{name}", job),
        Route("/api/v1/jobs/{scope}/{name}/executions/{execution:int}/log", log),
        Route("/api/v1/jobs/{scope}/{name}/executions/{execution:int}/log/stream", log_stream),
        Route("/api/v1/devices", devices),
        Route("/api/v1/notifications", notifications),
        Route("/api/v1/runner", runner),
        Route("/metrics", metrics),
        Route("/livez", livez),
        Route("/readyz", readyz),
        Route("/healthz", readyz),  # its first name
        Mount("/static", app=StaticFiles(directory=static), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(TokenGate, token=token, host=host),
        ],
        exception_handlers={BadQueryError: _bad_query},
    )


# -- requests -------------------------------------------------------------------------------


def _job_key(request: Request) -> tuple[str, str]:
    try:
        scope = safe_name(request.path_params["scope"], "scope")
        name = safe_name(request.path_params["name"], "job")
    except Exception as error:  # a name that cannot be a job: the same as an unknown one
        raise BadQueryError(str(error)) from None
    return scope, name


def _integer(request: Request, name: str, default: int, minimum: int, maximum: int = 2**31) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadQueryError(f"{name}={raw!r} is not a whole number") from None
    if not minimum <= value <= maximum:
        raise BadQueryError(f"{name}={value} is outside {minimum}..{maximum}")
    return value


def _selector(request: Request) -> Selector | None:
    """`selector=`: a label selector, as `jobrunner devices -l` takes it (none when empty)."""
    raw = request.query_params.get("selector", "").strip()
    if not raw:
        return None
    try:
        return parse_selector(raw)
    except SelectorError as error:
        raise BadQueryError(str(error)) from None


def _target_filter(request: Request) -> TargetFilter:
    statuses = frozenset(
        s for raw in request.query_params.getlist("status") for s in raw.split(",")
    )
    known = {s.value for s in TargetStatus}
    unknown = sorted(s for s in statuses if s and s not in known)
    if unknown:
        raise BadQueryError(f"status {', '.join(unknown)} is none of {', '.join(sorted(known))}")
    return TargetFilter(
        status=frozenset(s for s in statuses if s),
        wave=request.query_params.get("wave") or None,
        text=request.query_params.get("q", ""),
        offset=_integer(request, "offset", 0, minimum=0),
        limit=_integer(request, "limit", DEFAULT_LIMIT, minimum=0, maximum=MAX_LIMIT),
    )


def _log_path(request: Request, deps: Dependencies) -> Path | None:
    scope, name = _job_key(request)
    execution = int(request.path_params["execution"])
    if not deps.views.exists(scope, name):
        return None
    paths = deps.views.reader.state.job(scope, name)
    return paths.log(execution) if paths.storage.exists(paths.summary(execution)) else None


def _read_log(storage: Storage, path: Path, offset: int) -> tuple[list[str], int]:
    """The whole lines of the log from byte `offset` (-1: its last LOG_TAIL bytes), and the
    offset after them. A line still being written is left for the next read."""
    size = storage.size(path)
    if size is None:
        return [], 0
    start = max(0, size - LOG_TAIL) if offset < 0 else min(offset, size)
    data = storage.read_from(path, start)
    if offset < 0 and start > 0:
        cut = data.find(b"\n") + 1  # begin at a line of its own
        data, start = data[cut:], start + cut
    whole = data.rfind(b"\n") + 1
    text = data[:whole].decode("utf-8", "replace")
    return text.splitlines(), start + whole


async def _follow_log(
    request: Request, storage: Storage, path: Path, start: int
) -> AsyncIterator[str]:
    """Server-sent events: each log line as it is appended; its id is the offset after it,
    so a browser that reconnects (Last-Event-ID) goes on where it was."""
    offset = start
    while not await request.is_disconnected():
        lines, end = _read_log(storage, path, offset)
        if lines:
            yield "".join(f"data: {line}\n\n" for line in lines[:-1])
            yield f"id: {end}\ndata: {lines[-1]}\n\n"
        elif offset < 0:
            yield ": nothing logged yet\n\n"
        offset = end
        await asyncio.sleep(LOG_POLL)


# -- answers ----------------------------------------------------------------------------------


def _health(problems: list[str]) -> Response:
    if problems:
        text = "unhealthy: " + "; ".join(problems) + "\n"
        return Response(text, status_code=503, media_type="text/plain")
    return Response("ok\n", media_type="text/plain")


def _not_found(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=404)


async def _bad_query(_: Request, error: Exception) -> Response:
    return JSONResponse({"error": str(error)}, status_code=400)


class SecurityHeaders:
    """ASGI middleware: what a browser needs to run no script but the dashboard's own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)
