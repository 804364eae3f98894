"""`JOB` on the command line: NAME or SCOPE/NAME, resolved among the known jobs."""

from __future__ import annotations

import pytest

from jobrunner.engine.status import resolve_job_ref
from jobrunner.errors import JobError

KNOWN = [("acme", "modbus-driver-1.2"), ("acme", "agent-upgrade"), ("beta", "agent-upgrade")]


def test_a_bare_name_is_found_in_the_default_scope_first() -> None:
    assert resolve_job_ref("agent-upgrade", "beta", KNOWN, "jobs.d") == ("beta", "agent-upgrade")


def test_a_bare_name_unique_across_scopes_resolves_there() -> None:
    found = resolve_job_ref("modbus-driver-1.2", "default", KNOWN, "jobs.d")
    assert found == ("acme", "modbus-driver-1.2")


def test_a_bare_name_in_several_scopes_asks_for_the_scope() -> None:
    with pytest.raises(JobError, match=r"in several scopes \(acme/agent-upgrade, beta/agent-up"):
        resolve_job_ref("agent-upgrade", "default", KNOWN, "jobs.d")


def test_a_typo_suggests_the_close_names() -> None:
    with pytest.raises(JobError, match=r"no job modbus-drvier in jobs.d; did you mean acme/modb"):
        resolve_job_ref("modbus-drvier", "acme", KNOWN, "jobs.d")


def test_nothing_close_lists_the_known_jobs() -> None:
    with pytest.raises(JobError, match=r"known jobs: acme/agent-upgrade, acme/modbus-driver-1\.2"):
        resolve_job_ref("zzz", "acme", KNOWN, "jobs.d")


def test_a_scope_given_explicitly_is_not_searched_elsewhere() -> None:
    with pytest.raises(JobError, match="no job gamma/agent-upgrade"):
        resolve_job_ref("gamma/agent-upgrade", "acme", KNOWN, "jobs.d")
