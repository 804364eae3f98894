"""Who may look at the dashboard, and what device-provided text can do to a page."""

from __future__ import annotations

import httpx
import pytest

from jobrunner.errors import ConfigError
from jobrunner.web.address import is_loopback, parse_address

from ..engine.conftest import Scenario
from .conftest import serve

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token-for-tests"


def test_loopback_needs_no_token(scenario: Scenario) -> None:
    served = serve(scenario)
    try:
        assert served.get("/api/v1/jobs").status_code == 200
        assert served.get("/metrics").status_code == 200
    finally:
        served.stop()


def test_beyond_loopback_without_a_token_every_request_is_refused(scenario: Scenario) -> None:
    served = serve(scenario, address="0.0.0.0:0")
    try:
        for path in ("/", "/api/v1/jobs", "/metrics", "/healthz", "/static/dashboard.js"):
            response = served.get(path)
            assert response.status_code == 401, path
            assert "no token is set" in response.text
            assert "--http-token" in response.text
        # with a token it does not know of, either
        assert served.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
    finally:
        served.stop()


def test_with_a_token_only_requests_that_carry_it_pass(scenario: Scenario) -> None:
    served = serve(scenario, token=TOKEN, address="0.0.0.0:0")
    try:
        refused = served.get("/api/v1/jobs")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert (
            served.get("/api/v1/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        )
        assert served.get("/api/v1/jobs", cookies={"jobrunner_token": "wrong"}).status_code == 401
        assert served.get("/?token=wrong").status_code == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert served.get("/api/v1/jobs", headers=good).status_code == 200
        assert served.get("/metrics", headers=good).status_code == 200

        # A browser opens ?token= once: the token goes into a cookie and out of the address.
        with httpx.Client(base_url=served.url, timeout=10) as browser:
            first = browser.get("/devices?token=" + TOKEN + "&x=1")
            assert first.status_code == 303
            assert first.headers["location"] == "/devices?x=1"
            cookie = first.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie
            assert browser.get("/devices").status_code == 200
            assert browser.get("/api/v1/jobs").status_code == 200
    finally:
        served.stop()


def test_the_pages_forbid_scripts_from_elsewhere(scenario: Scenario) -> None:
    served = serve(scenario)
    try:
        page = served.get("/")
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "unsafe-inline" not in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert '<script src="/static/dashboard.js"' in page.text
        assert "http://" not in page.text and "https://" not in page.text  # no CDN
        script = served.get("/static/dashboard.js").text
        assert "innerHTML" not in script and "insertAdjacentHTML" not in script
    finally:
        served.stop()


def test_a_reply_message_with_markup_reaches_no_page_as_markup(scenario: Scenario) -> None:
    payload = "<img src=x onerror=window.__owned=1><script>window.__owned=2</script>"
    served = serve(scenario)
    scenario.registry(1)
    scenario.fleet(1)
    scenario.job(
        "hostile",
        f"- {{name: say, definition: Command Execution, timeout: 5s, properties: {{command: echo,"
        f' arguments: ["{payload}"]}}}}',
    )
    try:
        api = f"/api/v1/jobs/{scenario.scope}/hostile"
        served.wait_for(
            lambda: (
                served.get(api).status_code == 200
                and bool(served.get(api).json()["executions"])
                and served.get(api).json()["executions"][0]["status"] == "TERMINATED"
            ),
            "the execution to end",
        )
        message = served.json(api)["targets"][0]["message"]
        assert payload in message  # the API hands the text as it came (JSON-escaped)
        assert served.get(api).headers["content-type"].startswith("application/json")
        page = served.get(f"/jobs/{scenario.scope}/hostile").text
        assert "<img" not in page and "__owned" not in page
        log = served.json(api + "/executions/1/log")
        assert any(payload in line for line in log["lines"])
    finally:
        served.stop()


@pytest.mark.parametrize(
    ("address", "fine"),
    [("127.0.0.1:8080", True), ("[::1]:9000", True), ("0.0.0.0:80", True), ("x8080", False),
     ("host:", False), ("host:99999", False), (":8080", False), ("99999", False)],
)  # fmt: skip
def test_http_addresses(address: str, fine: bool) -> None:
    if fine:
        host, port = parse_address(address)
        assert (host, port) != ("", 0)
    else:
        with pytest.raises(ConfigError, match="write HOST:PORT"):
            parse_address(address)


def test_a_bare_port_listens_on_loopback_only() -> None:
    assert parse_address("8080") == ("127.0.0.1", 8080)


def test_what_counts_as_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.8.9.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    assert not is_loopback("gateway.example.com")
