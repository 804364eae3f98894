"""A rollout's rules, each reported at its FILE:LINE, and the job refused on an error while
the other jobs of the same run are kept."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobrunner.manifests import ManifestSet

from .conftest import MINIMAL_JOB, Write, job_with_spec, messages

STEPS = """\
targets: {all: true}
steps:
  - {name: stop, definition: Bundle Stop, timeout: 30s, properties: {bundleId: 1}}
rollout:
"""


def rollout_job(rollout: str) -> str:
    """A job whose spec.rollout is `rollout` (its first line is line 11)."""
    body = STEPS + "".join(f"  {line}\n" for line in rollout.strip("\n").splitlines())
    return job_with_spec(body)


# (case, rollout, line, message); the rollout body starts on line 11.
ERRORS = [
    (
        "remainder-not-last",
        "waves:\n  - {name: rest}\n  - {name: canary, devices: [gw-1]}",
        12,
        "wave 'rest' has no devices, tags or size: it takes every target left, so it must"
        " be the last wave",
    ),
    (
        "duplicate-wave-name",
        "waves:\n  - {name: canary, devices: [gw-1]}\n  - {name: canary, size: 1}",
        13,
        "wave name 'canary' is already used at line 12; wave names are unique in a rollout",
    ),
    (
        "device-wave-names-a-non-target",
        "waves:\n  - name: canary\n    devices: [gw-1, gw-9]",
        13,
        "device 'gw-9' of wave 'canary' is not a target of job 'job-1'; add it to"
        " spec.targets, or remove it from the wave",
    ),
    (
        "size-overflows-the-targets",
        "waves:\n  - {name: canary, devices: [gw-1]}\n  - name: early\n    size: 5",
        14,
        "wave 'early' takes 5 targets, but only 1 are left after the waves before it"
        " (2 target(s) in all)",
    ),
    (
        "threshold-above-100",
        "successThreshold: 120%",
        11,
        "'120%' is more than 100%",
    ),
    (
        "threshold-as-a-fraction",
        "successThreshold: 0.95",
        11,
        "0.95 is not a percentage; write e.g. 95% (from 0% to 100%)",
    ),
    (
        "window-shorter-than-a-step",
        'window:\n  cron: "0 0 1 ? * *"\n  duration: 10s',
        13,
        "the window lasts 10s, less than the timeout of step 'stop' (30s)",
    ),
    (
        "window-cron-invalid",
        'window: {cron: "0 0 25 ? * *", duration: 4h}',
        11,
        "invalid Quartz cron expression",
    ),
    (
        "wave-with-two-selectors",
        "waves:\n  - {name: canary, devices: [gw-1], size: 1}",
        12,
        "wave 'canary' selects by devices and size; give one of devices, tags or size",
    ),
    (
        "empty-wave-size",
        "waves:\n  - {name: canary, size: 0%}",
        12,
        "a wave of 0% is empty",
    ),
    (
        "ramp-every-not-a-count",
        "ramp: {base: 10, every: twenty}",
        11,
        "'twenty' is not a count of targets; write e.g. '20 succeeded'",
    ),
    ("max-per-minute-zero", "maxPerMinute: 0", 11, "greater than or equal to 1"),
    (
        "approval-not-required",
        "waves:\n  - {name: canary, devices: [gw-1], approval: yes}",
        12,
        "expected 'required', found true",
    ),
    (
        "approved-wave-unknown",
        "waves:\n  - {name: canary, devices: [gw-1]}\n  - {name: rest, approval: required}\n"
        "approved:\n  - canary\n  - rets",
        16,
        "approved names wave 'rets', which the rollout does not have; did you mean 'rest'?"
        " its waves: canary, rest",
    ),
]


@pytest.mark.parametrize(
    ("rollout", "line", "message"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS]
)
def test_a_bad_rollout_is_reported_at_its_line_and_refuses_only_its_job(
    rollout: str, line: int, message: str, write: Write, load: Callable[[], ManifestSet]
) -> None:
    bad = write("bad.yaml", rollout_job(rollout))
    good = write("good.yaml", MINIMAL_JOB.format(name="other"))

    result = load()

    found = messages(result, bad)
    assert any(n == line and message in text for n, text in found), found
    assert ("acme", "job-1") not in result.jobs
    assert ("acme", "other") in result.jobs, "the other job is not lost"
    assert messages(result, good) == []


def test_a_good_rollout_validates_clean(write: Write, load: Callable[[], ManifestSet]) -> None:
    write(
        "job.yaml",
        rollout_job(
            """\
waves:
  - {name: canary, devices: [gw-1]}
  - {name: early, size: 10%}
  - {name: rest}
successThreshold: 95%
soak: 10m
maxPerMinute: 120
ramp: {base: 10, factor: 2, every: 20 succeeded}
abort: {failureThreshold: 10%, minFinished: 20, cancel: true}
window: {cron: "0 0 1 ? * *", duration: 4h, timezone: Europe/Rome}
"""
        ),
    )
    result = load()
    assert [str(d) for d in result.errors] == []
    assert ("acme", "job-1") in result.jobs


def test_what_would_surprise_is_a_warning(write: Write, load: Callable[[], ManifestSet]) -> None:
    path = write(
        "job.yaml",
        rollout_job(
            """\
waves:
  - {name: canary, tags: [nowhere]}
window: {cron: "0 0 1 ? * *", duration: 4h, timezone: device}
maxPerMinute: 5
ramp: {base: 10, every: 5 succeeded}
abort: {failureThreshold: 10%, minFinished: 50}
"""
        ),
    )
    result = load()
    assert [str(d) for d in result.errors] == []
    warnings = {(d.line, d.message) for d in result.warnings if d.file == path}
    assert (
        12,
        "wave 'canary': no target carries tag(s) nowhere; the wave is empty and passes at once",
    ) in warnings
    assert any(
        line == 13 and "2 target(s) have no timezone in their DeviceList (gw-1, gw-2)" in text
        for line, text in warnings
    ), warnings
    assert any(line == 15 and "above maxPerMinute (5): it never ramps" in t for line, t in warnings)
    assert any(line == 16 and "the abort rule never decides" in t for line, t in warnings)


def test_approving_a_wave_that_asks_for_no_approval_is_a_warning(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    path = write(
        "job.yaml",
        rollout_job(
            "waves:\n  - {name: canary, devices: [gw-1]}\n  - {name: rest, approval: required}\n"
            "approved: [canary, rest]"
        ),
    )
    result = load()
    assert [str(d) for d in result.errors] == []
    warnings = [(d.line, d.message) for d in result.warnings if d.file == path]
    assert warnings == [
        (
            14,
            "wave 'canary' is approved but does not wait for an approval; add"
            " `approval: required` to it, or remove it from approved",
        )
    ]


def test_gates_without_waves_are_a_warning(write: Write, load: Callable[[], ManifestSet]) -> None:
    path = write("job.yaml", rollout_job("successThreshold: 90%\nsoak: 5m\nmaxPerMinute: 60"))
    result = load()
    warnings = [(d.line, d.message) for d in result.warnings if d.file == path]
    assert [line for line, _ in warnings] == [11, 12]
    assert all("gates waves, and this rollout has none" in text for _, text in warnings)


def test_a_device_timezone_is_checked(write: Write, load: Callable[[], ManifestSet]) -> None:
    path = write(
        "devices.yaml",
        """\
        apiVersion: jobrunner/v1
        kind: DeviceList
        metadata: {scope: acme}
        devices:
          - {clientId: gw-7, timezone: Europe/Roma}
        """,
    )
    result = load()
    assert any(
        n == 5 and "'Europe/Roma' is not an IANA time zone; did you mean 'Europe/Rome'?" in t
        for n, t in messages(result, path)
    ), messages(result, path)


def test_retry_needs_at_least_one_attempt(write: Write, load: Callable[[], ManifestSet]) -> None:
    path = write(
        "job.yaml",
        job_with_spec(STEPS.replace("rollout:\n", "retry: {maxAttempts: 0}\n")),
    )
    found = messages(load(), path)
    assert any(n == 10 and "greater than or equal to 1" in t for n, t in found), found
