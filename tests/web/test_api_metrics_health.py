"""The JSON API, /metrics and /healthz of a running daemon, against a real broker and fleet."""

from __future__ import annotations

import dataclasses
import errno
from contextlib import AbstractContextManager
from urllib.parse import quote

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobrunner.device import BrokerSettings
from jobrunner.engine.status import job_view
from jobrunner.simulator.broker import free_port
from jobrunner.simulator.config import LEGACY_PROFILE as LEGACY
from jobrunner.simulator.faults import FailFault, FaultPlan, Selector
from jobrunner.state.layout import StateDir
from jobrunner.state.outbox import Outbox, OutboxReader, lane_folder

from ..engine.conftest import Scenario
from .conftest import Served, serve

pytestmark = pytest.mark.integration

CHECK = "- {name: check, definition: Command Execution, timeout: 5s, properties: {command: echo}}"


def finished(served: Served, name: str, executions: int = 1) -> None:
    def done() -> bool:
        response = served.get(f"/api/v1/jobs/{served.scenario.scope}/{name}")
        if response.status_code != 200:
            return False
        found = response.json()["executions"]
        return len(found) >= executions and all(e["status"] != "RUNNING" for e in found)

    served.wait_for(done, f"{name} to end")


def test_the_api_gives_the_objects_of_status_json(scenario: Scenario, served: Served) -> None:
    scenario.registry(6)
    scenario.fleet(6, FaultPlan(fail=(FailFault(Selector("gw-0002", "command"), 500),)))
    scenario.job("check", CHECK)
    finished(served, "check")

    api = served.json(f"/api/v1/jobs/{scenario.scope}/check")
    recorded = job_view(scenario.state("check"))
    for key in ("scope", "name", "targets", "counts", "rollout", "steps"):
        assert api[key] == recorded[key], key
    assert [e["status"] for e in api["executions"]] == ["TERMINATED"]
    assert api["counts"] == {"PROCESS_OK": 5, "PROCESS_FAILED": 1}
    assert api["owner"] == f"runner-{scenario.scope}"
    assert api["page"] == {"offset": 0, "limit": 500, "total": 6}

    rows = served.json("/api/v1/jobs")
    assert [(r["scope"], r["name"], r["counts"]) for r in rows] == [
        (scenario.scope, "check", {"PROCESS_OK": 5, "PROCESS_FAILED": 1})
    ]
    devices = served.json("/api/v1/devices")
    assert {d["clientId"] for d in devices} == {f"gw-{n:04d}" for n in range(1, 7)}
    assert {d["status"] for d in devices} == {"CONNECTED"}


def test_targets_are_paged_and_filtered(scenario: Scenario, served: Served) -> None:
    scenario.registry(7)
    scenario.fleet(7, FaultPlan(fail=(FailFault(Selector("gw-000[35]", "command"), 500),)))
    scenario.job("check", CHECK)
    finished(served, "check")
    base = f"/api/v1/jobs/{scenario.scope}/check"

    first = served.json(base + "?limit=3")
    second = served.json(base + "?limit=3&offset=3")
    last = served.json(base + "?limit=3&offset=6")
    ids = [t["clientId"] for page in (first, second, last) for t in page["targets"]]
    assert ids == [f"gw-{n:04d}" for n in range(1, 8)]
    assert last["page"] == {"offset": 6, "limit": 3, "total": 7}

    failed = served.json(base + "?status=PROCESS_FAILED")
    assert [t["clientId"] for t in failed["targets"]] == ["gw-0003", "gw-0005"]
    assert failed["counts"] == {"PROCESS_OK": 5, "PROCESS_FAILED": 2}  # of the whole job
    assert [t["clientId"] for t in served.json(base + "?q=0006")["targets"]] == ["gw-0006"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?limit=ten", "limit='ten' is not a whole number"),
        ("?limit=20000", "limit=20000 is outside 0..10000"),
        ("?offset=-4", "offset=-4 is outside 0..2147483648"),
        ("?status=DONE", "status DONE is none of"),
    ],
)
def test_a_bad_query_gets_400_saying_what_is_right(
    scenario: Scenario, served: Served, query: str, message: str
) -> None:
    scenario.registry(1)
    scenario.fleet(1)
    scenario.job("check", CHECK)
    finished(served, "check")
    response = served.get(f"/api/v1/jobs/{scenario.scope}/check{query}")
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert served.get(f"/api/v1/jobs/{scenario.scope}/check").status_code == 200  # still serves


def test_unknown_jobs_and_names_that_cannot_be_jobs_get_404_or_400(
    scenario: Scenario, served: Served
) -> None:
    assert served.get(f"/api/v1/jobs/{scenario.scope}/nope").status_code == 404
    assert served.get(f"/jobs/{scenario.scope}/nope").status_code == 404
    assert served.get(f"/api/v1/jobs/{scenario.scope}/nope/executions/1/log").status_code == 404
    response = served.get("/api/v1/jobs/%2E%2E/job")
    assert response.status_code in (400, 404)
    assert served.get("/no/such/page").status_code == 404
    posted = httpx.post(served.url + "/api/v1/jobs", timeout=10)
    assert posted.status_code == 405  # read-only


def test_the_log_is_read_from_an_offset(scenario: Scenario, served: Served) -> None:
    scenario.registry(2)
    scenario.fleet(2)
    scenario.job("check", CHECK)
    finished(served, "check")
    path = f"/api/v1/jobs/{scenario.scope}/check/executions/1/log"
    whole = served.json(path)
    assert whole["lines"] == scenario.log("check", 1).splitlines()
    assert served.json(f"{path}?offset={whole['offset']}")["lines"] == []
    assert served.json(f"{path}?offset=0")["lines"] == whole["lines"]


def test_metrics_match_status_and_count_requests(scenario: Scenario, served: Served) -> None:
    scenario.registry(5)
    scenario.fleet(5, FaultPlan(fail=(FailFault(Selector("gw-0004", "command"), 500),)))
    scenario.job("check", CHECK)
    finished(served, "check")

    response = served.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    targets = {
        s.labels["status"]: s.value
        for s in families["jobrunner_targets"].samples
        if s.labels["job"] == "check"
    }
    recorded = scenario.state("check").counts()
    assert (
        {k: v for k, v in targets.items() if v}
        == recorded
        == {
            "PROCESS_OK": 4,
            "PROCESS_FAILED": 1,
        }
    )
    executions = {
        s.labels["status"]: s.value
        for s in families["jobrunner_executions"].samples
        if s.name == "jobrunner_executions_total"
    }
    assert executions == {"TERMINATED": 1, "STOPPED": 0, "ABORTED": 0}  # ended ones only
    running = [
        s.value
        for s in families["jobrunner_executions_running"].samples
        if s.labels["job"] == "check"
    ]
    assert running == [0]
    requests = {
        (s.labels["app"], s.labels["outcome"]): s.value
        for s in families["jobrunner_requests"].samples
        if s.name == "jobrunner_requests_total"
    }
    assert requests == {("CMD-V1", "ok"): 4, ("CMD-V1", "error"): 1}
    durations = [
        s.value
        for s in families["jobrunner_request_duration_seconds"].samples
        if s.name.endswith("_count")
    ]
    assert durations == [5]
    devices = {
        s.labels["state"]: s.value
        for s in families["jobrunner_devices"].samples
        if s.labels["scope"] == scenario.scope
    }
    assert devices["CONNECTED"] == 5
    assert families["jobrunner_broker_connected"].samples[0].value == 1
    assert families["jobrunner_in_flight"].samples[0].value == 0
    dropped = {
        s.labels["lane"]: s.value
        for s in families["jobrunner_inbound_dropped"].samples
        if s.name == "jobrunner_inbound_dropped_total"
    }
    assert dropped == {"replies": 0, "lifecycle": 0}  # there from the start, for alerts
    labels = {k for f in families.values() for s in f.samples for k in s.labels}
    assert not {"client_id", "clientId", "device"} & labels  # bounded cardinality


def test_healthz_says_why_when_the_state_cannot_be_written(
    scenario: Scenario, served: Served
) -> None:
    served.wait_for(lambda: served.get("/healthz").status_code == 200, "healthy")
    assert served.get("/healthz").text == "ok\n"
    runner = served.daemon.runner
    assert runner is not None and runner.engine.storage is not None
    storage = runner.engine.storage
    batch = storage.batch

    def disk_full() -> AbstractContextManager[None]:
        raise OSError(errno.ENOSPC, "No space left on device")

    storage.batch = disk_full  # type: ignore[method-assign]  # every turn's write fails now
    try:
        served.wait_for(lambda: served.get("/healthz").status_code == 503, "unhealthy")
        assert served.get("/healthz").text == (
            "unhealthy: the state directory cannot be written ([Errno 28] No space left on"
            " device)\n"
        )
    finally:
        storage.batch = batch  # type: ignore[method-assign]
    served.wait_for(lambda: served.get("/healthz").status_code == 200, "healthy again")


def test_healthz_is_503_while_the_broker_is_away(scenario: Scenario) -> None:
    config = dataclasses.replace(
        scenario.config(),
        broker=BrokerSettings.resolve(
            f"mqtt://127.0.0.1:{free_port()}", client_id=f"runner-{scenario.scope}"
        ),
    )
    served = serve(scenario, config=config)
    try:
        response = served.get("/healthz")
        assert response.status_code == 503
        assert "not connected to the broker" in response.text
        assert served.json("/api/v1/runner")["brokerConnected"] is False
        assert served.get("/api/v1/jobs").status_code == 200  # the dashboard still serves
    finally:
        served.stop()


def test_the_notifications_backlog_is_in_the_api_the_page_and_the_metrics(
    scenario: Scenario,
) -> None:
    state = StateDir(scenario.state_dir)
    folder = state.owners.outbox(f"runner-{scenario.scope}")
    box = Outbox(state.storage, folder)
    for n in range(5):
        box.put(f"{scenario.scope}/ops", {"id": f"e{n}", "time": f"2026-01-01T00:00:0{n}Z"})
    box.close()
    reader = OutboxReader(state.storage, lane_folder(folder, f"{scenario.scope}/ops"))
    reader.drop_oldest(3)
    reader.close()
    served = serve(scenario)  # no notifier beside it: what waits stays
    try:
        (row,) = served.json("/api/v1/notifications")
        assert row["notification"] == f"{scenario.scope}/ops"
        assert (row["undelivered"], row["dropped"]) == (3, 2)
        assert row["oldest"] == "2026-01-01T00:00:02Z" and row["oldestAgeSeconds"] > 0
        assert 'id="notifications"' in served.get("/").text
        families = {f.name: f for f in text_string_to_metric_families(served.get("/metrics").text)}
        label = {"notification": f"{scenario.scope}/ops"}
        assert [s.value for s in families["jobrunner_outbox_events"].samples] == [3]
        assert families["jobrunner_outbox_events"].samples[0].labels == label
        (dropped,) = [
            s
            for s in families["jobrunner_notifications_dropped"].samples
            if s.name.endswith("_total")
        ]
        assert (dropped.labels, dropped.value) == (label, 2)
        (age,) = families["jobrunner_outbox_oldest_age_seconds"].samples
        assert age.value > 0
    finally:
        served.stop()


def test_devices_are_filtered_by_a_label_selector(scenario: Scenario, served: Served) -> None:
    scenario.registry(4)
    scenario.fleet(4, versions=(("gw-000[12]", "KURA_5.5.0"),), profiles=(("gw-0004", LEGACY),))
    served.wait_for(
        lambda: len(served.json("/api/v1/devices?selector=kura.version")) == 4,
        "every BIRTH",
    )

    chosen = served.json("/api/v1/devices?selector=kura.version%3E5.4.1,kura.app%3DKEYS-V1")
    legacy = served.json("/api/v1/devices?selector=" + quote("kura.model in (RPI-3B)"))
    everyone = served.json("/api/v1/devices?selector=")
    bad = served.get("/api/v1/devices?selector=" + quote("kura.version>=new"))

    assert [d["clientId"] for d in chosen] == ["gw-0001", "gw-0002"]
    assert [d["clientId"] for d in legacy] == ["gw-0004"]
    assert len(everyone) == 4
    assert bad.status_code == 400
    assert bad.json() == {
        "error": "selector 'kura.version>=new', at character 15: >= compares versions, and"
        " 'new' is not one; write digits and dots, e.g. kura.version>=5.4"
    }
