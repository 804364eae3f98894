"""Rules that span documents and files: unique names, quotas, targets that match nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from jobrunner.manifests import ManifestSet, load_manifests

from .conftest import MINIMAL_JOB, Write, job_with_spec, messages

SCOPE = """\
apiVersion: jobrunner/v1
kind: Scope
metadata: {{name: acme}}
spec:
  maxJobs: {limit}
"""


def test_second_declaration_of_a_job_name_is_the_error(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    first = write("a.yaml", MINIMAL_JOB.format(name="rollout"))
    second = write("b.yaml", MINIMAL_JOB.format(name="rollout"))

    result = load()

    assert messages(result, first) == []
    assert messages(result, second) == [
        (
            4,
            f"job 'rollout' is already declared in scope 'acme' at {first}:4;"
            " job names are unique in a scope; the two are the same: remove one",
        )
    ]
    assert result.jobs[("acme", "rollout")].origin.file == first


def test_a_job_declared_twice_differently_names_every_difference_at_both_lines(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    first = write("a.yaml", MINIMAL_JOB.format(name="rollout"))
    second = write(
        "b.yaml",
        MINIMAL_JOB.format(name="rollout")
        .replace("devices: [gw-1]", "devices: [gw-2]")
        .replace("bundleId: 1}}", "bundleId: 2}, timeout: 5s}"),
    )

    result = load()

    [(line, message)] = messages(result, second)
    assert line == 4
    assert message.endswith(
        "; the two differ in 3 place(s):"
        f' spec.targets.devices is ["gw-1"] at {first}:7 and ["gw-2"] here (line 7);'
        f' spec.steps[0].timeout is "30s" at {first}:9 and "5s" here (line 9);'
        f" spec.steps[0].properties.bundleId is 1 at {first}:9 and 2 here (line 9)"
    ), message


def test_same_job_name_in_two_scopes_is_fine(write: Write, load: Callable[[], ManifestSet]) -> None:
    write("a.yaml", MINIMAL_JOB.format(name="rollout"))
    write("b.yaml", MINIMAL_JOB.format(name="rollout").replace("scope: acme", "scope: other"))

    result = load()

    assert not result.errors
    assert {("acme", "rollout"), ("other", "rollout")} <= set(result.jobs)


def test_job_without_scope_takes_the_configured_one(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    write("a.yaml", MINIMAL_JOB.format(name="rollout").replace("  scope: acme\n", ""))
    assert ("acme", "rollout") in load().jobs


def test_step_names_are_unique_in_a_job(write: Write, load: Callable[[], ManifestSet]) -> None:
    path = write(
        "a.yaml",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}
              - {name: start, definition: Bundle Start, properties: {bundleId: 1}}
              - {name: stop, definition: Bundle Stop, properties: {bundleId: 2}}
            """
        ),
    )

    result = load()

    assert messages(result, path) == [
        (11, "step name 'stop' is already used at line 9; step names are unique in a job")
    ]
    assert ("acme", "job-1") not in result.jobs


def test_schedule_names_are_unique_in_a_job(write: Write, load: Callable[[], ManifestSet]) -> None:
    path = write(
        "a.yaml",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}
            schedules:
              - {name: s, type: device-connect}
              - {name: s, type: interval, interval: 1h}
            """
        ),
    )

    assert messages(load(), path) == [
        (12, "schedule name 's' is already used at line 11; schedule names are unique in a job")
    ]


def test_max_jobs_zero_refuses_every_job(write: Write, load: Callable[[], ManifestSet]) -> None:
    scope = write("scope.yaml", SCOPE.format(limit=0))
    job = write("a.yaml", MINIMAL_JOB.format(name="rollout"))

    result = load()

    assert messages(result, job) == [
        (4, f"scope 'acme' refuses jobs (maxJobs: 0 at {scope}:5); job 'rollout' is refused")
    ]
    assert not result.jobs


def test_max_jobs_refuses_the_jobs_beyond_the_cap(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    scope = write("0-scope.yaml", SCOPE.format(limit=2))
    for name in ("a", "b", "c"):
        write(f"{name}.yaml", MINIMAL_JOB.format(name=name))

    result = load()

    assert sorted(result.jobs) == [("acme", "a"), ("acme", "b")]
    assert [str(e) for e in result.errors] == [
        f"{scope.parent / 'c.yaml'}:4: scope 'acme' already holds its 2 job(s)"
        f" (maxJobs at {scope}:5); job 'c' is refused: remove a job or raise maxJobs"
    ]


def test_duplicate_device_in_a_scope_is_an_error(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    path = write(
        "z-more-devices.yaml",
        """\
        apiVersion: jobrunner/v1
        kind: DeviceList
        metadata: {scope: acme}
        devices:
          - {clientId: gw-3}
          - {clientId: gw-1, displayName: again}
        """,
    )

    result = load()

    assert len(messages(result, path)) == 1
    line, message = messages(result, path)[0]
    assert line == 6
    assert message.startswith("device 'gw-1' is already declared in scope 'acme' at ")
    assert message.endswith(
        "; the two differ in 2 place(s): displayName is (absent) at"
        f' {path.parent / "registry.yaml"}:5 and "again" here (line 6);'
        f' tags is ["line-1"] at {path.parent / "registry.yaml"}:5 and [] here (line 6)'
    ), message
    assert set(result.devices["acme"]) == {"gw-1", "gw-2", "gw-3"}


def test_unknown_devices_and_tags_are_warnings(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    path = write(
        "a.yaml",
        job_with_spec(
            """\
            targets:
              devices: [gw-1, gw-9]
              tags: [line-1, line-9]
            steps:
              - {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}
            """
        ),
    )

    result = load()

    assert not result.errors
    assert [(w.line, w.message.split(";")[0]) for w in result.warnings if w.file == path] == [
        (8, "device 'gw-9' is not in the registry of scope 'acme'"),
        (9, "tag 'line-9' matches no registered device of scope 'acme'"),
    ]
    assert ("acme", "job-1") in result.jobs


def test_a_job_that_does_not_validate_is_still_checked_across_files(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    """One run reports everything: the schema error, and what the rules across files say of
    the same document (its name taken already, its tags matching no device)."""
    first = write("a.yaml", MINIMAL_JOB.format(name="rollout"))
    broken = write(
        "b.yaml",
        job_with_spec(
            """\
            targets: {tags: [line-9]}
            steps:
              - {name: stop, definition: Bundle Stop, timout: 3s, properties: {bundleId: 1}}
            """,
            name="rollout",
        ),
    )

    result = load()

    assert messages(result, first) == []
    found = [(d.line, d.severity.value, d.message) for d in result.diagnostics if d.file == broken]
    assert found == [
        (
            4,
            "error",
            f"job 'rollout' is already declared in scope 'acme' at {first}:4;"
            " job names are unique in a scope",
        ),
        (7, "warning", "tag 'line-9' matches no registered device of scope 'acme'"),
        (9, "error", "unknown key 'timout'; did you mean 'timeout'?"),
    ]


def test_a_dot_in_a_scope_or_a_client_id_is_a_warning(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    registry = write(
        "dotted.yaml",
        """\
        apiVersion: jobrunner/v1
        kind: DeviceList
        metadata: {scope: plant.turin}
        devices:
          - {clientId: gw-0001.line3}
        """,
    )

    result = load()

    found = [(d.line, d.message) for d in result.warnings if d.file == registry]
    assert [line for line, _ in found] == [3, 5]
    assert found[0][1].startswith("'.' in scope 'plant.turin': some brokers (RabbitMQ's MQTT")
    assert found[1][1].startswith("'.' in client id 'gw-0001.line3'")
    assert not result.errors


def test_what_kura_takes_and_then_ignores_is_a_warning_at_its_line(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    path = write(
        "a.yaml",
        job_with_spec(
            """\
            targets: {all: true}
            steps:
              - name: run
                definition: Command Execution
                properties:
                  command: env
                  environment: {PLAIN: yes-please, FLAGS: "a=b"}
                  stdin: "hello"
            """
        ),
    )

    result = load()

    assert not result.errors
    assert [(w.line, w.message) for w in result.warnings if w.file == path] == [
        (
            13,
            "environment variable 'FLAGS': Kura cuts a value at its first '=', so the command"
            " gets 'a'",
        ),
        (
            14,
            "stdin: Kura's command service does not pass it to the command; give the input as"
            " an argument or in a file",
        ),
    ]


def test_files_named_in_jobrunnerignore_are_not_manifests(
    jobs_dir: Path, write: Write, load: Callable[[], ManifestSet]
) -> None:
    (jobs_dir / ".jobrunnerignore").write_text(
        "# drafts and examples are not applied\ndrafts/\n*.example.yaml\n!keep.example.yaml\n"
    )
    write("job.yaml", MINIMAL_JOB.format(name="applied"))
    write("drafts/half.yaml", "kind: Job\nspec: [not, finished\n")
    write("other.example.yaml", "this is: [not yaml\n")
    write("keep.example.yaml", MINIMAL_JOB.format(name="kept"))

    result = load()

    assert [str(d) for d in result.errors] == []
    assert sorted(name for _, name in result.jobs) == ["applied", "kept"]
    assert not any("drafts" in str(f) or "other.example" in str(f) for f in result.files)


def test_a_jobrunnerignore_that_cannot_be_used_is_said_and_every_file_is_read(
    jobs_dir: Path, write: Write, load: Callable[[], ManifestSet]
) -> None:
    ignore = jobs_dir / ".jobrunnerignore"
    ignore.write_text("drafts/\n!\n")
    write("job.yaml", MINIMAL_JOB.format(name="applied"))
    write("drafts/other.yaml", MINIMAL_JOB.format(name="draft"))

    result = load()

    assert [(d.file, d.message) for d in result.errors] == [
        (
            ignore,
            "line 2: '!' is not a gitignore pattern (Invalid git pattern: '!'); every file is"
            " read as a manifest",
        )
    ]
    assert sorted(name for _, name in result.jobs) == ["applied", "draft"]


def test_values_are_checked_for_every_device_a_selector_may_choose(tmp_path: Path) -> None:
    (tmp_path / "devices.yaml").write_text(
        "apiVersion: jobrunner/v1\nkind: DeviceList\nmetadata: {scope: acme}\ndevices:\n"
        "  - {clientId: gw-1, labels: {site: turin}, vars: {ntp: 10.0.0.1}}\n"
        "  - {clientId: gw-2, labels: {site: turin}}\n"
        "  - {clientId: gw-3, labels: {site: milan}}\n"
    )
    job = tmp_path / "job.yaml"
    job.write_text(
        "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: ntp, scope: acme}\nspec:\n"
        '  targets: {selector: "site=turin,kura.version>=5.4"}\n'
        "  steps:\n"
        "    - name: clock\n"
        "      definition: Configuration Put\n"
        "      properties:\n"
        "        configurations:\n"
        "          - pid: org.eclipse.kura.clock.ClockService\n"
        '            properties: {clock.ntp.host: "${device.vars.ntp}"}\n'
    )

    result = load_manifests([tmp_path], default_scope="acme")

    errors = [(d.file, d.line, d.message) for d in result.errors]
    assert len(errors) == 1, errors
    file, line, message = errors[0]
    assert (file, line) == (job, 12)
    assert "gw-2" in message and "ntp" in message and "gw-3" not in message
