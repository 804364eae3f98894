"""Who may look: loopback without a token; anywhere else only with `--http-token`.

The token comes as `Authorization: Bearer TOKEN` (scripts, Prometheus' `authorization`),
or once as `?token=TOKEN` in a browser, which then keeps it in a cookie of its own
(HttpOnly, SameSite=Strict) so that the page's own requests carry it.

`/livez` alone needs no token: a container's or an orchestrator's liveness probe carries none,
and it tells nothing but whether the engine loop turns.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from jobrunner.web.address import is_loopback

COOKIE = "jobrunner_token"
OPEN_PATHS = frozenset({"/livez"})


class TokenGate:
    """ASGI middleware: 401 for a request without the token, when one is needed."""

    def __init__(self, app: ASGIApp, token: str | None, host: str) -> None:
        self.app = app
        self.token = token
        self.open = token is None and is_loopback(host)
        self.refusal = (
            f"this dashboard listens on {host}, beyond this machine, and no token is set:"
            " every request is refused. Start `jobrunner watch` with --http-token"
            " (JOBRUNNER_HTTP_TOKEN), or listen on 127.0.0.1."
            if token is None and not self.open
            else "a token is needed: send `Authorization: Bearer TOKEN`, or open the page"
            " once as ...?token=TOKEN"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.open or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = self._check(request)
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _check(self, request: Request) -> Response | None:
        """None when the request may pass; else the answer it gets."""
        if self.token is None:
            return _refused(self.refusal)
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() == "bearer" and self._matches(value.strip()):
            return None
        if self._matches(request.cookies.get(COOKIE, "")):
            return None
        in_query = request.query_params.get("token")
        if in_query is not None and self._matches(in_query):
            # Keep it in a cookie and drop it from the address bar (and from the history).
            rest = {k: v for k, v in parse_qs(request.url.query).items() if k != "token"}
            target = request.url.path + (f"?{urlencode(rest, doseq=True)}" if rest else "")
            redirect = RedirectResponse(target, status_code=303)
            redirect.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
            return redirect
        return _refused(self.refusal)

    def _matches(self, value: str) -> bool:
        assert self.token is not None
        return bool(value) and hmac.compare_digest(value.encode(), self.token.encode())


def _refused(reason: str) -> Response:
    return PlainTextResponse(
        f"401 Unauthorized: {reason}\n",
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="jobrunner"'},
    )
