"""A scope's Policy decides whose commits may change its jobs (docs/policy.md).

Real git, real signatures (throwaway OpenPGP or SSH keys: `gitrepo` beside this file); the
plan is computed as `jobrunner plan` computes it, and the last test applies it with a runner.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobrunner.cli.main import cli
from jobrunner.engine.planning.plan import Action, Plan, compute_plan
from jobrunner.engine.planning.policy import record_policies
from jobrunner.engine.planning.spec import schedule_digest, spec_digest
from jobrunner.engine.service.runner import device_tags
from jobrunner.manifests import load_manifests
from jobrunner.state.jobstore import JobState
from jobrunner.state.layout import StateDir
from jobrunner.state.policies import policy_file
from jobrunner.state.records import JobRecord, SourceRef

from ..conftest import Scenario
from .gitrepo import SIGNERS, Repo, signing_repo

pytestmark = pytest.mark.skipif(not SIGNERS, reason="neither gpg nor ssh-keygen is installed")

JOB = """\
apiVersion: jobrunner/v1
kind: Job
metadata: {{name: {name}, scope: acme}}
spec:
  targets: {{devices: [gw-0001]}}
  steps:
    - {{name: stop, definition: Bundle Stop, properties: {{bundleId: 42}}}}
  run: "{run}"
"""
POLICY = """\
apiVersion: jobrunner/v1
kind: Policy
metadata: {{scope: acme}}
spec:
  allowedAuthors: [{authors}]
{keys}"""


@pytest.fixture(params=SIGNERS)
def repo(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Repo]:
    with signing_repo(tmp_path / "repo", request.param, monkeypatch, ("alice", "mallory")) as made:
        (made.root / "jobs.d").mkdir()
        yield made


def write(repo: Repo, name: str, text: str) -> Path:
    path = repo.root / "jobs.d" / name
    path.write_text(text)
    return path


def policy(repo: Repo, authors: str = "alice@example.com", keys: str | None = None) -> str:
    listed = f"  allowedSigningKeys: [{keys}]\n" if keys is not None else ""
    return POLICY.format(authors=authors, keys=listed)


def plan(repo: Repo, require_signed: bool = False) -> Plan:
    manifests = load_manifests([repo.root / "jobs.d"], default_scope="acme")
    state = StateDir(repo.root.parent / "state")
    return compute_plan(manifests, state, {}, None, require_signed=require_signed)


def action(result: Plan, name: str = "rollout") -> tuple[Action, list[str]]:
    [job] = [j for j in result.jobs if j.name == name]
    return job.action, job.problems


# --- allowedAuthors ----------------------------------------------------------------------------


def test_without_a_policy_nothing_is_checked_and_git_is_not_asked(repo: Repo) -> None:
    write(repo, "job.yaml", JOB.format(name="rollout", run="1"))  # not even committed
    assert action(plan(repo))[0] is Action.CREATE


def test_an_allowed_author_changes_jobs_and_another_is_refused_with_file_and_line(
    repo: Repo,
) -> None:
    write(repo, "policy.yaml", policy(repo))
    write(repo, "job.yaml", JOB.format(name="rollout", run="1"))
    repo.commit("alice")
    assert action(plan(repo)) == (Action.CREATE, [])

    job = write(repo, "job.yaml", JOB.format(name="rollout", run="2"))
    sha = repo.commit("mallory")
    result = plan(repo)

    found, problems = action(result)
    assert found is Action.REFUSED
    assert problems == [
        f"{job}:3: refused by policy: last changed in commit {sha[:12]} by mallory@example.com,"
        f" who is not in allowedAuthors of the policy of scope 'acme'"
        f" ({repo.root / 'jobs.d' / 'policy.yaml'}:1); ask an allowed author to commit the"
        " change, or add the author to the policy"
    ]
    assert result.exit_code == 1
    assert result.jobs[0].start is None


def test_uncommitted_and_untracked_manifests_are_refused_under_a_policy(repo: Repo) -> None:
    write(repo, "policy.yaml", policy(repo))
    write(repo, "job.yaml", JOB.format(name="rollout", run="1"))
    repo.commit("alice")
    write(repo, "job.yaml", JOB.format(name="rollout", run="2"))
    write(repo, "new.yaml", JOB.format(name="newcomer", run="1"))

    result = plan(repo)

    assert "has uncommitted changes: only committed changes can be judged" in action(result)[1][0]
    assert (
        "is not committed: only committed changes can be judged" in action(result, "newcomer")[1][0]
    )


def test_a_job_that_changes_nothing_needs_no_permission(repo: Repo) -> None:
    write(repo, "policy.yaml", policy(repo))
    write(repo, "job.yaml", JOB.format(name="rollout", run="1"))
    repo.commit("alice")
    result = plan(repo)
    record_policies(StateDir(repo.root.parent / "state"), result.policy_changes)
    _record(repo, result)
    write(repo, "job.yaml", "# reviewed\n" + JOB.format(name="rollout", run="1"))
    repo.commit("mallory")

    assert action(plan(repo))[0] is Action.UNCHANGED


# --- --require-signed ---------------------------------------------------------------------------


def test_require_signed_takes_only_good_signatures_of_allowed_keys(repo: Repo) -> None:
    alice, mallory = repo.people["alice"], repo.people["mallory"]
    allowed = "alice@example.com, mallory@example.com"
    write(repo, "policy.yaml", policy(repo, allowed, f'"{alice.fingerprint}"'))
    job = write(repo, "job.yaml", JOB.format(name="rollout", run="1"))
    repo.commit("alice", signed="alice")
    assert action(plan(repo, require_signed=True)) == (Action.CREATE, [])

    write(repo, "job.yaml", JOB.format(name="rollout", run="2"))
    unsigned = repo.commit("alice")
    assert action(plan(repo))[0] is Action.CREATE  # authors only: no signature needed
    [problem] = action(plan(repo, require_signed=True))[1]
    assert problem == (
        f"{job}:3: refused by policy: last changed in commit {unsigned[:12]} by"
        " alice@example.com, which has no signature; --require-signed applies only signed"
        " commits"
    )

    write(repo, "job.yaml", JOB.format(name="rollout", run="3"))
    repo.commit("mallory", signed="mallory")  # a key git trusts, but not this scope's
    [problem] = action(plan(repo, require_signed=True))[1]
    assert f"signed by key {mallory.fingerprint}, which is not in allowedSigningKeys" in problem

    write(repo, "job.yaml", JOB.format(name="rollout", run="4"))
    repo.commit("alice", signed="alice")
    assert action(plan(repo, require_signed=True)) == (Action.CREATE, [])


def test_a_first_policy_that_is_refused_closes_the_scope_rather_than_opening_it(
    repo: Repo,
) -> None:
    write(repo, "policy.yaml", policy(repo))
    write(repo, "job.yaml", JOB.format(name="rollout", run="1"))
    repo.commit("alice")  # unsigned: not trusted under --require-signed
    write(repo, "job.yaml", JOB.format(name="rollout", run="2"))
    repo.commit("mallory", signed="mallory")

    result = plan(repo, require_signed=True)

    assert "no change to the scope's jobs applies until a policy is accepted" in str(
        result.manifests.errors[0]
    )
    assert "the refused policy of scope 'acme' allows nothing" in action(result)[1][0]


def test_require_signed_without_a_policy_takes_any_key_git_can_verify(repo: Repo) -> None:
    write(repo, "job.yaml", JOB.format(name="rollout", run="1"))
    repo.commit("mallory")
    assert "which has no signature" in action(plan(repo, require_signed=True))[1][0]

    write(repo, "job.yaml", "# signed\n" + JOB.format(name="rollout", run="1"))
    repo.commit("mallory", signed="mallory")
    assert action(plan(repo, require_signed=True)) == (Action.CREATE, [])


# --- the policy guards itself -----------------------------------------------------------------


def _accept(repo: Repo) -> Plan:
    result = plan(repo)
    record_policies(StateDir(repo.root.parent / "state"), result.policy_changes)
    return result


def _record(repo: Repo, result: Plan) -> None:
    """What an applied plan leaves: the job recorded with its run token."""
    state = StateDir(repo.root.parent / "state")
    for job in result.jobs:
        if job.declared is None:
            continue
        manifest = job.declared.manifest
        record = JobRecord(
            scope=job.scope,
            name=job.name,
            spec=manifest.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
            spec_digest=spec_digest(manifest),
            schedule_digest=schedule_digest(manifest),
            run_token=manifest.spec.run,
            source=SourceRef(file=str(job.declared.origin.file), line=3),
        )
        JobState.create(state, record).close()


def test_a_policy_change_by_someone_the_recorded_policy_does_not_allow_is_refused(
    repo: Repo,
) -> None:
    write(repo, "policy.yaml", policy(repo))
    write(repo, "job.yaml", JOB.format(name="rollout", run="1"))
    repo.commit("alice")
    first = _accept(repo)
    assert [c.scope for c in first.policy_changes] == ["acme"]

    # Mallory lets herself in, and changes the job, in one commit.
    policy_path = write(repo, "policy.yaml", policy(repo, "alice@example.com, mallory@example.com"))
    write(repo, "job.yaml", JOB.format(name="rollout", run="2"))
    sha = repo.commit("mallory")
    result = plan(repo)

    [error] = [str(d) for d in result.manifests.errors]
    assert error.startswith(
        f"{policy_path}:1: the policy of scope 'acme' is refused: last changed in commit"
        f" {sha[:12]} by mallory@example.com, who is not in allowedAuthors of the policy of"
        f" scope 'acme' recorded from {policy_path} at commit"
    )
    assert error.endswith(
        f"recorded from {policy_path} at commit {first.policy_changes[0].commit[:12]})"
    )
    assert action(result)[0] is Action.REFUSED  # judged by the policy still in force
    assert result.policy_changes == []


def test_a_policy_removed_by_someone_it_does_not_allow_stays_in_force(repo: Repo) -> None:
    policy_path = write(repo, "policy.yaml", policy(repo))
    write(repo, "job.yaml", JOB.format(name="rollout", run="1"))
    repo.commit("alice")
    _accept(repo)
    state = StateDir(repo.root.parent / "state")

    policy_path.unlink()
    write(repo, "job.yaml", JOB.format(name="rollout", run="2"))
    repo.commit("mallory")
    result = plan(repo)
    assert "the removal of the policy of scope 'acme' is refused" in str(result.manifests.errors[0])
    assert action(result)[0] is Action.REFUSED

    write(repo, "policy.yaml", policy(repo))
    repo.commit("mallory")  # the policy back as recorded: nothing about it to judge
    assert plan(repo).manifests.errors == []

    policy_path.unlink()
    write(repo, "job.yaml", "# by alice\n" + JOB.format(name="rollout", run="2"))
    repo.commit("alice")
    result = _accept(repo)
    assert result.manifests.errors == [] and action(result)[0] is Action.CREATE
    assert not policy_file(state, "acme").exists()


def test_a_policy_that_does_not_validate_is_not_taken_as_removed(repo: Repo) -> None:
    policy_path = write(repo, "policy.yaml", policy(repo))
    write(repo, "job.yaml", JOB.format(name="rollout", run="1"))
    repo.commit("alice")
    _accept(repo)
    write(repo, "policy.yaml", policy(repo, "not-an-address"))
    write(repo, "job.yaml", JOB.format(name="rollout", run="2"))
    repo.commit("mallory")

    result = plan(repo)

    assert any(d.file == policy_path for d in result.manifests.errors)
    assert action(result)[0] is Action.REFUSED  # the recorded policy stays in force


# --- applied by a runner --------------------------------------------------------------------------


def test_a_refused_job_is_left_exactly_as_recorded_and_not_started(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    with signing_repo(scenario.root, SIGNERS[0], monkeypatch, ("alice", "mallory")) as repo:
        scenario.registry(1)
        fleet = scenario.fleet(1)
        scenario.write("policy.yaml", policy(repo).replace("acme", scenario.scope))
        scenario.job(
            "rollout", "- {name: stop, definition: Bundle Stop, properties: {bundleId: 42}}"
        )
        repo.commit("alice", signed="alice")
        assert _reconcile(scenario)  # started
        before = (JobState.load(StateDir(scenario.state_dir), scenario.scope, "rollout")).record

        scenario.job(
            "rollout",
            "- {name: stop, definition: Bundle Stop, properties: {bundleId: 42}}",
            run="2",
        )
        repo.commit("mallory", signed="mallory")
        assert _reconcile(scenario) == []

        after = JobState.load(StateDir(scenario.state_dir), scenario.scope, "rollout").record
        assert after.run_token == before.run_token == "1"
        assert after.spec == before.spec and after.revision_applied == before.revision_applied
        assert after.problem is not None and "refused by policy" in after.problem
        assert fleet.count(operation="bundle-stop") == 1


def _reconcile(scenario: Scenario) -> list[tuple[str, str, int]]:
    with scenario.runner() as runner:
        manifests = runner.load()
        runner.plan(manifests)  # registers the scope's devices, as reconcile does
        devices = device_tags(manifests, runner.registry)
        result = compute_plan(manifests, runner.state, devices, None, require_signed=True)
        applied = runner.apply(result)
        runner.wait(applied.started)
        return applied.started


def test_plan_shows_a_refused_job_with_file_line_and_why(repo: Repo) -> None:
    write(repo, "policy.yaml", policy(repo))
    repo.commit("alice")
    job = write(repo, "job.yaml", JOB.format(name="rollout", run="1"))
    repo.commit("mallory")
    state = repo.root.parent / "state"
    state.mkdir()

    result = CliRunner().invoke(
        cli,
        [
            "plan",
            "--jobs-dir",
            str(repo.root / "jobs.d"),
            "--state-dir",
            str(state),
            "--scope",
            "acme",
        ],
    )

    assert result.exit_code == 1, result.output
    assert "! refused   acme/rollout" in result.output
    assert f"{job}:3: refused by policy: last changed in commit" in result.output
