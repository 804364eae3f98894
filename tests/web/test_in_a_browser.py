"""The dashboard in a real browser: headless Chromium, driven by Playwright.

Debian's `chromium` is used when it is installed (`.ci/run` installs it), else the browser
Playwright downloaded (`playwright install chromium`); without either, these tests are
skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobrunner.simulator.config import LEGACY_PROFILE
from jobrunner.simulator.faults import DelayFault, FailFault, FaultPlan, Selector

from ..engine.conftest import Scenario
from .conftest import Served

pytestmark = pytest.mark.integration

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def _chromium() -> str | None:
    return os.environ.get("JOBRUNNER_TEST_CHROMIUM") or shutil.which("chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=_chromium(), args=["--no-sandbox", "--disable-gpu"]
            )
        except playwright_api.Error as error:
            pytest.skip(f"no headless Chromium to run (install Debian's chromium): {error}")
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    # The test's own probes are evaluated strings, which the dashboard's CSP forbids; with it
    # bypassed, the markup test also proves the page itself never renders device text.
    context = browser.new_context(bypass_csp=True)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.errors = errors
    yield opened
    context.close()


def statuses(page: Any) -> dict[str, str]:
    rows = page.query_selector_all("#targets tbody tr")
    return {row.get_attribute("data-client-id"): row.get_attribute("data-status") for row in rows}


def test_targets_change_status_live_without_a_reload(
    scenario: Scenario, served: Served, page: Any
) -> None:
    slow = FaultPlan(
        slow=(
            DelayFault(Selector("gw-000[1-2]", "command"), 1.5),
            DelayFault(Selector("gw-000[3-4]", "command"), 4.0),
        )
    )
    scenario.registry(4)  # the targets resolve from the DeviceList, not from who connected
    scenario.fleet(4, slow)
    scenario.job(
        "slow",
        "- {name: check, definition: Command Execution, timeout: 20s, properties: {command: echo}}",
    )
    api = f"/api/v1/jobs/{scenario.scope}/slow"
    served.wait_for(lambda: served.get(api).status_code == 200, "the job to be recorded")
    page.goto(f"{served.url}/jobs/{scenario.scope}/slow")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    page.wait_for_function("document.querySelectorAll('#targets tbody tr').length === 4")
    first = statuses(page)
    assert set(first) == {"gw-0001", "gw-0002", "gw-0003", "gw-0004"}
    assert "PROCESS_AWAITING" in first.values(), first  # opened while the execution runs
    assert page.text_content("#executions tbody") is not None
    assert "RUNNING" in page.text_content("#executions tbody")

    page.wait_for_function(
        "[...document.querySelectorAll('#targets tbody tr')]"
        ".filter(r => r.dataset.status === 'PROCESS_OK').length === 4",
        timeout=20_000,
    )
    assert set(statuses(page).values()) == {"PROCESS_OK"}
    page.wait_for_function(
        "document.querySelector('#executions tbody').textContent.includes('TERMINATED')"
    )
    # The log streams in as it is written, and nothing reloaded the page meanwhile.
    page.wait_for_function("document.querySelector('#log').textContent.includes('TERMINATED')")
    assert "gw-0004" in page.text_content("#log")
    assert navigations == []
    assert page.errors == []

    # Filtering by status asks the API for that page only.
    page.select_option("#filter select[name=status]", "PROCESS_FAILED")
    page.wait_for_function("document.querySelectorAll('#targets tbody tr').length === 0")
    assert page.text_content("#page-info") == "none"


def test_the_overview_and_devices_pages(scenario: Scenario, served: Served, page: Any) -> None:
    scenario.registry(3)
    scenario.fleet(3)
    scenario.job(
        "quick", "- {name: check, definition: Command Execution, properties: {command: echo}}"
    )
    page.goto(served.url + "/")
    page.wait_for_function(
        "document.querySelector('#jobs tbody').textContent.includes('TERMINATED')", timeout=20_000
    )
    link = page.query_selector("#jobs tbody a")
    assert link.text_content() == f"{scenario.scope}/quick"
    assert "broker connected" in page.text_content("#connection")
    link.click()
    page.wait_for_url(f"**/jobs/{scenario.scope}/quick")
    page.goto(served.url + "/devices")
    page.wait_for_function("document.querySelectorAll('#devices tbody tr').length === 3")
    assert page.text_content("#devices tbody").count("CONNECTED") == 3
    page.fill("#filter input[name=q]", "gw-0002")
    page.wait_for_function("document.querySelectorAll('#devices tbody tr').length === 1")
    assert page.text_content("#shown") == "1-1 of 1 (3 in all)"
    assert page.errors == []


def test_markup_in_a_device_reply_is_shown_as_text_and_never_runs(
    scenario: Scenario, served: Served, page: Any
) -> None:
    payload = "<img src=x onerror=window.__owned=1><script>window.__owned=2</script>"
    scenario.registry(1)
    scenario.fleet(1)
    scenario.job(
        "hostile",
        "- {name: say, definition: Command Execution, properties: {command: echo,"
        f' arguments: ["{payload}"]}}}}',
    )
    api = f"/api/v1/jobs/{scenario.scope}/hostile"
    served.wait_for(lambda: served.get(api).status_code == 200, "the job to be recorded")
    page.goto(f"{served.url}/jobs/{scenario.scope}/hostile")
    page.wait_for_function(
        "document.querySelector('#targets tbody').textContent.includes('PROCESS_OK')",
        timeout=20_000,
    )
    page.wait_for_function("document.querySelector('#log').textContent.includes('<script>')")
    assert payload in page.text_content("#targets tbody")
    assert page.evaluate("window.__owned") is None
    assert page.query_selector("#targets img") is None and page.query_selector("#log img") is None
    assert page.errors == []


def test_a_job_whose_manifest_was_removed_is_marked_on_both_pages(
    scenario: Scenario, served: Served, page: Any
) -> None:
    scenario.registry(1)
    scenario.fleet(1)
    manifest = scenario.job(
        "gone", "- {name: check, definition: Command Execution, properties: {command: echo}}"
    )
    scenario.job(
        "kept", "- {name: check, definition: Command Execution, properties: {command: echo}}"
    )
    page.goto(served.url + "/")
    page.wait_for_function("document.querySelectorAll('#jobs tbody tr').length === 2")
    assert page.query_selector("#jobs [data-mark]") is None, "no job is marked yet"

    manifest.unlink()  # the daemon reconciles: the job is orphaned, its history kept
    served.wait_for(
        lambda: any(j["name"] == "gone" and j["orphaned"] for j in served.json("/api/v1/jobs")),
        "the job to be orphaned",
    )

    gone = f"#jobs tr[data-job='{scenario.scope}/gone'] [data-mark=orphaned]"
    page.wait_for_selector(gone)
    assert page.text_content(gone) == "manifest removed"
    assert page.query_selector(f"#jobs tr[data-job='{scenario.scope}/kept'] [data-mark]") is None
    page.goto(f"{served.url}/jobs/{scenario.scope}/gone")
    page.wait_for_selector("#title [data-mark=orphaned]")
    assert page.text_content("#title [data-mark=orphaned]") == "manifest removed"
    assert page.errors == []


def test_a_wave_awaiting_approval_and_who_approved_it_are_shown(
    scenario: Scenario, served: Served, page: Any
) -> None:
    scenario.registry(3)
    scenario.fleet(3)
    scenario.job(
        "gated",
        "- {name: check, definition: Command Execution, properties: {command: echo}}",
        extra="rollout:\n  waves:\n    - {name: canary, devices: [gw-0001]}\n"
        "    - {name: rest, approval: required}\n",
    )
    api = f"/api/v1/jobs/{scenario.scope}/gated"
    served.wait_for(
        lambda: (
            served.get(api).status_code == 200
            and served.json(api)["rollout"]["state"] == "awaiting-approval"
        ),
        "the rollout awaiting an approval",
    )
    page.goto(f"{served.url}/jobs/{scenario.scope}/gated")
    page.wait_for_function(
        "document.querySelector('#rollout-state').textContent === 'awaiting-approval'"
    )
    assert "jobrunner approve" in page.text_content("#rollout-reason")
    assert "approval required" in page.text_content("#waves tbody")

    code, output = scenario.invoke("approve", "gated", "--by", "alice")
    assert code == 0, output
    page.wait_for_function(
        "document.querySelector('#waves tbody').textContent.includes('approved by alice')",
        timeout=20_000,
    )
    page.wait_for_function(
        "document.querySelector('#rollout-state').textContent === 'passed'", timeout=20_000
    )
    assert page.errors == []


def test_the_overview_puts_what_needs_attention_first_and_each_page_is_pictured(
    scenario: Scenario, served: Served, page: Any, tmp_path: Path
) -> None:
    scenario.registry(3)
    scenario.fleet(3, FaultPlan(fail=(FailFault(Selector("gw-0002", "command"), 500),)))
    check = "- {name: check, definition: Command Execution, properties: {command: echo}}"
    scenario.job("a-healthy", check, targets="devices: [gw-0001]")
    scenario.write(
        "b-broken.yaml",
        "apiVersion: jobrunner/v1\nkind: Job\n"
        f"metadata: {{name: b-broken, scope: {scenario.scope}, description: fails on gw-0002}}\n"
        f'spec:\n  targets: {{all: true}}\n  run: "1"\n  steps:\n    {check}\n',
    )
    served.wait_for(
        lambda: len(served.json("/api/v1/jobs")) == 2
        and all(j["lastExecution"] and j["lastExecution"]["status"] == "TERMINATED"
                for j in served.json("/api/v1/jobs")),
        "both executions ended",
    )  # fmt: skip
    page.goto(served.url + "/")
    page.wait_for_function("document.querySelectorAll('#jobs tbody tr').length === 2")
    page.wait_for_function("document.querySelector('#jobs tbody').textContent.includes('100%')")
    rows = page.query_selector_all("#jobs tbody tr")
    assert [r.get_attribute("data-attention") for r in rows] == ["failed", "ok"]
    first = rows[0].text_content()
    assert "b-broken" in first and "fails on gw-0002" in first
    assert "1 failed" in first and "2 ok" in first and "100%" in first
    shots = {"overview": tmp_path / "overview.png"}
    page.screenshot(path=str(shots["overview"]), full_page=True)

    page.goto(f"{served.url}/jobs/{scenario.scope}/b-broken")
    page.wait_for_function("document.querySelectorAll('#targets tbody tr').length === 3")
    assert "PROCESS_FAILED" in page.text_content("#targets tbody")
    shots["job"] = tmp_path / "job.png"
    page.screenshot(path=str(shots["job"]), full_page=True)

    page.goto(served.url + "/devices")
    page.wait_for_function("document.querySelectorAll('#devices tbody tr').length === 3")
    shots["devices"] = tmp_path / "devices.png"
    page.screenshot(path=str(shots["devices"]), full_page=True)
    for name, shot in shots.items():
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert page.errors == []


def test_the_devices_page_filters_by_a_label_selector(
    scenario: Scenario, served: Served, page: Any
) -> None:
    scenario.write(
        "registry.yaml",
        "apiVersion: jobrunner/v1\nkind: DeviceList\n"
        f"metadata: {{scope: {scenario.scope}}}\ndevices:\n"
        "  - {clientId: gw-0001, labels: {site: turin}}\n"
        "  - {clientId: gw-0002, labels: {site: milan}}\n"
        "  - {clientId: gw-0003, labels: {site: turin}}\n",
    )
    scenario.fleet(
        3,
        versions=(("gw-0001", "KURA_5.5.0"),),
        profiles=(("gw-0003", LEGACY_PROFILE),),
    )
    # A link to a filtered list: the selector comes from the address.
    page.goto(served.url + "/devices?selector=kura.version%3E%3D5.4")
    page.wait_for_function(
        "[...document.querySelectorAll('#devices tbody tr')].map((r) => r.cells[1].textContent)"
        ".join() === 'gw-0001,gw-0002'",
        timeout=20_000,
    )
    assert page.input_value("#filter input[name=selector]") == "kura.version>=5.4"
    page.wait_for_function(  # the labels, once the daemon read the DeviceList
        "document.querySelector('#devices tbody').textContent.includes('site=milan')"
    )

    page.fill("#filter input[name=selector]", "site=turin,kura.model=RPI-3B")
    page.wait_for_function(
        "[...document.querySelectorAll('#devices tbody tr')].map((r) => r.cells[1].textContent)"
        ".join() === 'gw-0003'"
    )
    assert "selector=site%3Dturin%2Ckura.model%3DRPI-3B" in page.url

    page.fill("#filter input[name=selector]", "site in (turin")
    page.wait_for_function("!document.getElementById('problem').hidden")
    assert "400 selector 'site in (turin', at character 15: the list opened at character 9" in (
        page.text_content("#problem")
    )
    assert page.errors == []


def test_the_devices_page_pages_through_every_device_counts_and_filters_by_status(
    scenario: Scenario, served: Served, page: Any
) -> None:
    scenario.registry(250)  # declared; three of them connect
    scenario.fleet(3)
    served.wait_for(
        lambda: sum(d["status"] == "CONNECTED" for d in served.json("/api/v1/devices")) == 3,
        "three devices connected",
    )
    page.goto(served.url + "/devices")
    page.wait_for_function("document.querySelectorAll('#devices tbody tr').length === 200")
    assert page.text_content("#shown") == "1-200 of 250"
    counts = page.text_content("#device-counts")
    assert "3 connected" in counts and "247 unknown" in counts
    page.click("#next")
    page.wait_for_function("document.querySelectorAll('#devices tbody tr').length === 50")
    assert page.text_content("#shown") == "201-250 of 250"
    assert page.is_disabled("#next") and not page.is_disabled("#previous")

    page.select_option("#filter select[name=status]", "CONNECTED")
    page.wait_for_function("document.querySelectorAll('#devices tbody tr').length === 3")
    rows = page.query_selector_all("#devices tbody tr")
    assert {r.get_attribute("data-status") for r in rows} == {"CONNECTED"}
    assert page.text_content("#shown") == "1-3 of 3 (250 in all)"
    assert page.errors == []
