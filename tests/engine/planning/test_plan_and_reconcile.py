"""Plan and reconcile: creates, updates, conflicts, removals, and what is never applied."""

from __future__ import annotations

import json

from ..conftest import Scenario

STEP = "- {name: stop, definition: Bundle Stop, properties: {bundleId: 42}}"
OTHER_STEP = "- {name: stop, definition: Bundle Stop, properties: {bundleId: 43}}"


def plan(scenario: Scenario, *extra: str) -> tuple[int, str]:
    return scenario.invoke("plan", "--jobs-dir", str(scenario.jobs_dir), *extra)


def status(scenario: Scenario, job: str) -> dict:  # type: ignore[type-arg]
    code, output = scenario.invoke("status", job, "-o", "json")
    assert code == 0, output
    return json.loads(output)  # type: ignore[no-any-return]


def test_create_then_in_sync(scenario: Scenario) -> None:
    scenario.registry(3)
    scenario.fleet(3)
    scenario.job("rollout", STEP)

    code, output = plan(scenario, "--verbose")
    assert code == 2
    assert f"+ create    {scenario.scope}/rollout" in output
    assert "3 target(s)" in output and "targets: gw-0001, gw-0002, gw-0003" in output
    assert "start: run token '1'" in output

    scenario.reconcile()

    assert plan(scenario)[0] == 0


def test_update_of_description_and_schedules_is_applied(scenario: Scenario) -> None:
    scenario.registry(1)
    scenario.fleet(1)
    scenario.job("rollout", STEP)
    scenario.reconcile()

    scenario.job(
        "rollout", STEP, extra="schedules:\n  - {name: hourly, type: interval, interval: 1h}\n"
    )
    code, output = plan(scenario)
    assert code == 2
    assert "~ update" in output and "schedules" in output

    scenario.reconcile()
    assert plan(scenario)[0] == 0
    assert status(scenario, "rollout")["executions"][0]["id"] == 1


def test_changed_steps_after_the_first_execution_are_a_conflict_never_applied(
    scenario: Scenario,
) -> None:
    scenario.registry(2)
    fleet = scenario.fleet(2)
    manifest = scenario.job("rollout", STEP)
    scenario.reconcile()

    scenario.job("rollout", OTHER_STEP, run="2")  # a new step AND a new run token
    code, output = plan(scenario)
    assert code == 1
    assert f"! conflict  {scenario.scope}/rollout" in output
    assert f"{manifest}:7: step 0 'stop' changed after execution 1 froze them" in output

    fleet.reset_observations()
    assert scenario.reconcile() == [], "nothing of a conflicting change is applied"
    view = status(scenario, "rollout")
    assert view["conflict"]["file"] == str(manifest) and view["conflict"]["line"] == 7
    assert len(view["executions"]) == 1
    assert fleet.count() == 0

    scenario.job("rollout", STEP, run="2")  # targets and steps restored: the token applies
    assert scenario.reconcile() == []  # every target is done: nothing to start
    assert status(scenario, "rollout")["conflict"] is None
    assert scenario.state("rollout").record.run_token == "2"


def test_a_removed_manifest_stops_nothing_it_should_not_and_keeps_history(
    scenario: Scenario,
) -> None:
    scenario.registry(1)
    scenario.fleet(1)
    manifest = scenario.job("rollout", STEP)
    scenario.reconcile()

    manifest.unlink()
    code, output = plan(scenario)
    assert code == 2
    assert f"- remove    {scenario.scope}/rollout" in output

    scenario.reconcile()
    view = status(scenario, "rollout")
    assert view["orphaned"] is True
    assert [e["id"] for e in view["executions"]] == [1]
    assert plan(scenario)[0] == 0


def test_nothing_is_removed_while_a_file_cannot_be_read(scenario: Scenario) -> None:
    scenario.registry(1)
    scenario.fleet(1)
    manifest = scenario.job("rollout", STEP)
    scenario.reconcile()

    manifest.unlink()
    scenario.write("broken.yaml", "apiVersion: jobrunner/v1\nkind: [unclosed\n")
    code, output = plan(scenario)

    assert code == 1
    assert "! invalid   " in output and "could not be read" in output
    scenario.reconcile()
    assert status(scenario, "rollout")["orphaned"] is False


def test_a_broken_manifest_marks_only_its_own_job(scenario: Scenario) -> None:
    scenario.registry(2)
    scenario.fleet(2)
    scenario.job("good", STEP)
    bad = scenario.job("bad", STEP)
    scenario.reconcile()

    bad.write_text(bad.read_text().replace("bundleId: 42", "bundleId: forty-two"))
    scenario.job("good", STEP, run="2")
    code, output = plan(scenario)

    assert code == 1
    assert f"! invalid   {scenario.scope}/bad" in output
    assert f"{bad}:" in output and "expected a whole number" in output
    assert scenario.reconcile() == []  # every target of good is done: nothing to start
    assert scenario.state("good").record.run_token == "2", "good's token applied"


def test_a_new_run_token_while_the_job_runs_waits(scenario: Scenario) -> None:
    scenario.registry(1)
    scenario.fleet(1)
    scenario.job("rollout", STEP, run=None)
    with scenario.runner() as runner:
        runner.start_job(scenario.scope, "rollout", runner.load())
        scenario.job("rollout", STEP, run="1")
        job_plan = next(j for j in runner.plan(runner.load()).jobs if j.name == "rollout")
        assert job_plan.start == "run token '1'"
        assert job_plan.blocked == "waits for execution 1 to end"


def test_a_first_execution_with_no_known_device_waits_instead_of_freezing_nothing(
    scenario: Scenario,
) -> None:
    scenario.job("rollout", STEP, targets="tags: [nowhere]")
    code, output = plan(scenario)
    assert code == 2
    assert "waits for a target" in output
    assert scenario.reconcile() == []


def test_reconcile_wait_says_what_it_could_not_start_and_exits_3(scenario: Scenario) -> None:
    scenario.registry(1)
    scenario.job("rollout", STEP, targets="tags: [nowhere]")

    code, output = scenario.invoke(
        "reconcile", "--wait", "--jobs-dir", str(scenario.jobs_dir), "--broker",
        scenario.broker.url, "--client-id", f"runner-{scenario.scope}",
    )  # fmt: skip

    assert f"not started: {scenario.scope}/rollout: waits for a target" in output
    assert code == 3, output  # what --wait waited for did not happen
    code, output = scenario.invoke(
        "reconcile", "--jobs-dir", str(scenario.jobs_dir), "--broker",
        scenario.broker.url, "--client-id", f"runner-{scenario.scope}",
    )  # fmt: skip
    assert "not started" in output and code == 0  # without --wait: said, not an error


def test_start_of_a_job_whose_targets_are_all_done_starts_nothing_and_says_so(
    scenario: Scenario,
) -> None:
    scenario.registry(2)
    scenario.fleet(2)
    scenario.job("rollout", STEP)
    scenario.reconcile()
    flags = (
        "--jobs-dir", str(scenario.jobs_dir), "--broker", scenario.broker.url,
        "--client-id", f"runner-{scenario.scope}",
    )  # fmt: skip

    code, output = scenario.invoke("start", "rollout", *flags)
    chosen_code, chosen = scenario.invoke("start", "rollout", "--target", "gw-0001", *flags)

    assert code == 0, output
    assert f"nothing to do: every target of job {scenario.scope}/rollout is done" in output
    assert "started " + scenario.scope not in output
    assert chosen_code == 0 and "nothing to do: every target chosen of job" in chosen
    assert list(scenario.state("rollout").executions) == [1]  # no empty execution recorded
