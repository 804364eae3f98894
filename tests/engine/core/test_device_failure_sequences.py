"""The failure sequences a Kura device sends end the step at once, with the device's words."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobrunner.device.operations import DEFAULT_SETTINGS
from jobrunner.simulator.faults import FailFault, FaultPlan, Selector

from ..conftest import Scenario

pytestmark = pytest.mark.integration


def _steps(properties: str) -> str:
    return (
        "- name: install\n"
        "  definition: Package Download / Install\n"
        "  timeout: 5s\n"
        "  completionTimeout: 1h\n"
        "  properties: {uri: 'https://repo.example.com/m-1.2.0.dp', name: m, version: 1.2.0,"
        f" fileHash: 'MD5:46cb0ad3a1c5'{properties}}}\n"
    )


def _hash_mismatch(device: str) -> FaultPlan:
    return FaultPlan(fail=(FailFault(Selector(device, "download"), "hash-mismatch"),))


def test_a_hash_that_does_not_match_fails_the_step_at_once(scenario: Scenario) -> None:
    scenario.registry(2)
    scenario.fleet(
        2, FaultPlan(fail=(FailFault(Selector("gw-0001", "download"), "hash-mismatch"),))
    )
    scenario.job("agent", _steps(""))

    scenario.reconcile()  # the completion timeout is 1 h: the message below says why it ended

    assert scenario.statuses("agent") == {
        "gw-0001": (0, "PROCESS_FAILED"),
        "gw-0002": (0, "PROCESS_OK"),
    }
    message = scenario.messages("agent")["gw-0001"] or ""
    assert message.startswith("download of m 1.2.0 failed on the device: Error during download")
    assert "the file's hash did not match fileHash" in message
    assert f"target gw-0001 step 0 'install': {message}; PROCESS_FAILED" in scenario.log("agent", 1)


def test_a_download_only_with_a_hash_succeeds_after_the_check_and_fails_on_a_mismatch(
    scenario: Scenario,
) -> None:
    scenario.registry(2)
    scenario.fleet(
        2, FaultPlan(fail=(FailFault(Selector("gw-0002", "download"), "hash-mismatch"),))
    )
    scenario.job("fetch", _steps(", install: false"))

    scenario.reconcile(operations=replace(DEFAULT_SETTINGS, hash_check_seconds=1.0))

    assert scenario.statuses("fetch") == {
        "gw-0001": (0, "PROCESS_OK"),
        "gw-0002": (0, "PROCESS_FAILED"),
    }
    messages = scenario.messages("fetch")
    assert messages["gw-0001"] == "downloaded m 1.2.0; no hash failure reported in 1s"
    assert "hash did not match" in (messages["gw-0002"] or "")
    log = scenario.log("fetch", 1)
    assert "target gw-0001 step 0 'install': downloaded m 1.2.0; the device checks its hash" in log
