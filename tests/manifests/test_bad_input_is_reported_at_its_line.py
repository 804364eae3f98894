"""Every kind of bad manifest gets a message that names its line and says what would be right."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobrunner.manifests import ManifestSet

from .conftest import MINIMAL_JOB, Write, job_with_spec, messages

# The spec body starts on line 7 of job_with_spec(); the comments give each line's number.
CASES: list[tuple[str, str, int, str]] = [
    (
        "yaml-syntax",
        "apiVersion: jobrunner/v1\nkind: Job\nmetadata:\n  name: [unclosed\n",
        5,
        "YAML syntax error",
    ),
    ("not-a-mapping", "- just\n- a list\n", 1, "must be a mapping"),
    ("scalar-document", "hello\n", 1, "must be a mapping"),
    (
        "wrong-api-version",
        MINIMAL_JOB.format(name="j").replace("jobrunner/v1", "jobrunner/v2"),
        1,
        "apiVersion 'jobrunner/v2' is not supported; write jobrunner/v1",
    ),
    (
        "missing-api-version",
        MINIMAL_JOB.format(name="j").replace("apiVersion: jobrunner/v1\n", ""),
        1,
        "missing apiVersion",
    ),
    (
        "wrong-kind",
        MINIMAL_JOB.format(name="j").replace("kind: Job", "kind: Jbo"),
        2,
        "unknown kind 'Jbo'; did you mean 'Job'?",
    ),
    (
        "misspelled-key",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - name: stop
                definition: Bundle Stop
                timout: 30s
                properties: {bundleId: 1}
            """
        ),
        11,
        "unknown key 'timout'; did you mean 'timeout'?",
    ),
    (
        "misspelled-top-level-key",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            step:
              - {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}
            """
        ),
        8,
        "unknown key 'step'; did you mean 'steps'?",
    ),
    (
        "unknown-step-definition",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - name: stop
                definition: Bundle Stopp
                properties: {bundleId: 1}
            """
        ),
        10,  # the definition's own line, not the step's first
        "unknown definition 'Bundle Stopp'; did you mean 'Bundle Stop'?",
    ),
    (
        "property-of-wrong-type",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - name: stop
                definition: Bundle Stop
                properties:
                  bundleId: true
            """
        ),
        12,
        "expected a whole number, found true",
    ),
    (
        "version-written-as-a-number",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - name: install
                definition: Package Download / Install
                properties:
                  uri: https://repo.example.com/a.dp
                  name: a
                  version: 1.2
            """
        ),
        14,
        "expected text, found the number 1.2",
    ),
    (
        "enum-value-not-in-the-list",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - name: install
                definition: Package Download / Install
                properties:
                  uri: https://repo.example.com/a.sh
                  name: a
                  version: 1.2.0
                  fileType: SCRIPT
            """
        ),
        15,
        "expected 'DEPLOYMENT_PACKAGE' or 'EXECUTABLE_SCRIPT', found the text 'SCRIPT'",
    ),
    (
        "missing-property",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - name: install
                definition: Package Download / Install
                properties:
                  uri: https://repo.example.com/a.dp
                  version: 1.2.0
            """
        ),
        11,
        "missing required key 'name' in spec.steps[0].properties",
    ),
    (
        "completion-timeout-on-a-sync-step",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - name: stop
                definition: Bundle Stop
                completionTimeout: 1h
                properties: {bundleId: 1}
            """
        ),
        11,
        "completionTimeout': it applies only to asynchronous steps",
    ),
    (
        "invalid-duration",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - name: stop
                definition: Bundle Stop
                timeout: 30 seconds
                properties: {bundleId: 1}
            """
        ),
        11,
        "'30 seconds' is not a duration; write a number and a unit",
    ),
    (
        "zero-duration",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - {name: stop, definition: Bundle Stop, timeout: 0s, properties: {bundleId: 1}}
            """
        ),
        9,
        "'0s' is not a positive duration",
    ),
    (
        "duration-beyond-what-a-clock-holds",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - name: stop
                definition: Bundle Stop
                timeout: 1000000000d
                properties: {bundleId: 1}
            """
        ),
        11,
        "'1000000000d' is longer than ten years",
    ),
    (
        "time-without-zone",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}
            schedules:
              - name: every-hour
                type: interval
                interval: 1h
                startsOn: 2026-12-01T00:00:00
            """
        ),
        14,
        "the time has no zone",
    ),
    (
        "time-that-is-not-a-time",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}
            schedules:
              - {name: every-hour, type: interval, interval: 1h, startsOn: next monday}
            """
        ),
        11,
        "'next monday' is not an ISO-8601 time",
    ),
    (
        "unknown-time-zone",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}
            schedules:
              - name: nightly
                type: cron
                cron: "0 0 2 * * ?"
                timezone: Europe/Roma
            """
        ),
        14,
        "'Europe/Roma' is not an IANA time zone; did you mean 'Europe/Rome'?",
    ),
    (
        "invalid-cron",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}
            schedules:
              - name: nightly
                type: cron
                cron: "0 0 2 * * MON-FRI"
            """
        ),
        13,
        "invalid Quartz cron expression '0 0 2 * * MON-FRI'",
    ),
    (
        "unix-cron-with-five-fields",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}
            schedules:
              - {name: nightly, type: cron, cron: "0 2 * * *"}
            """
        ),
        11,
        "invalid Quartz cron expression",
    ),
    (
        "unknown-schedule-type",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}
            schedules:
              - {name: nightly, type: crontab, cron: "0 0 2 * * ?"}
            """
        ),
        11,
        "unknown type 'crontab'; did you mean 'cron'?",
    ),
    (
        "schedule-ends-before-it-starts",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}
            schedules:
              - name: december
                type: interval
                interval: 30m
                startsOn: 2026-12-01T00:00:00Z
                endsOn: 2026-11-01T00:00:00Z
            """
        ),
        15,
        "endsOn (2026-11-01T00:00:00+00:00) must be after startsOn (2026-12-01T00:00:00+00:00)",
    ),
    (
        "name-with-path-traversal",
        MINIMAL_JOB.format(name="../x"),
        4,
        "'../x' is not a valid name",
    ),
    ("empty-name", MINIMAL_JOB.format(name='""'), 4, "'' is not a valid name"),
    ("name-too-long", MINIMAL_JOB.format(name="a" * 64), 4, "is not a valid name"),
    (
        "uppercase-name",
        MINIMAL_JOB.format(name="Rollout"),
        4,
        "'Rollout' is not a valid name",
    ),
    (
        "empty-targets",
        job_with_spec(
            """\
            targets: {}
            steps:
              - {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}
            """
        ),
        7,
        "targets select no device",
    ),
    (
        "targets-all-false-only",
        job_with_spec(
            """\
            targets:
              all: false
            steps:
              - {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}
            """
        ),
        7,
        "targets select no device",
    ),
    (
        "empty-steps",
        job_with_spec(
            """\
            targets: {all: true}
            steps: []
            """
        ),
        8,
        "a job needs at least one step",
    ),
    (
        "missing-steps",
        job_with_spec(
            """\
            targets: {all: true}
            """
        ),
        6,
        "missing required key 'steps' in spec",
    ),
    (
        "python-object-tag",
        job_with_spec(
            """\
            targets: {all: true}
            steps:
              - name: stop
                definition: Bundle Stop
                properties: {bundleId: !!python/object/apply:os.system ["touch /tmp/pwned"]}
            """
        ),
        11,
        "tag '!!python/object/apply:os.system' is not allowed",
    ),
    (
        "duplicate-key",
        job_with_spec(
            """\
            targets: {all: true}
            steps:
              - {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}
            targets: {devices: [gw-1]}
            """
        ),
        10,
        "duplicate key 'targets' (first at line 7)",
    ),
    (
        "invalid-client-id",
        job_with_spec(
            """\
            targets: {devices: [gw/1]}
            steps:
              - {name: stop, definition: Bundle Stop, properties: {bundleId: 1}}
            """
        ),
        7,
        "'gw/1' is not a valid device client id",
    ),
    (
        "channel-value-of-wrong-type",
        job_with_spec(
            """\
            targets: {all: true}
            steps:
              - name: write
                definition: Asset Write
                properties:
                  assets:
                    - name: plc
                      channels:
                        - {name: speed, type: INTEGER, value: fast}
            """
        ),
        15,
        "channel 'speed': an INTEGER value is a whole number",
    ),
    (
        "certificate-that-is-not-pem",
        job_with_spec(
            """\
            targets: {all: true}
            steps:
              - name: trust
                definition: Keystore Certificate Create
                properties: {keystoreId: SSLKeystore, alias: ca, certificate: "hello"}
            """
        ),
        11,
        "not PEM text",
    ),
    (
        "configuration-put-with-both-forms",
        job_with_spec(
            """\
            targets: {all: true}
            steps:
              - name: conf
                definition: Configuration Put
                properties:
                  xml: "<esf:configurations/>"
                  configurations: [{pid: a, properties: {x: 1}}]
            """
        ),
        11,
        "give either 'configurations' or 'xml'",
    ),
    (
        "run-token-read-as-a-decimal-number",
        job_with_spec(
            """            targets: {all: true}
            steps: [{name: stop, definition: Bundle Stop, properties: {bundleId: 1}}]
            run: 1.10
            """
        ),
        9,
        "is a decimal number to YAML, which reads 1.1 and 1.10 alike: quote the token",
    ),
    (
        "empty-environment-value",
        job_with_spec(
            """\
            targets: {all: true}
            steps:
              - name: run
                definition: Command Execution
                properties: {command: env, environment: {EMPTY: ""}}
            """
        ),
        11,
        "environment variable 'EMPTY' has an empty value, which Kura refuses",
    ),
    (
        "run-token-true",
        job_with_spec(
            """            targets: {all: true}
            steps: [{name: stop, definition: Bundle Stop, properties: {bundleId: 1}}]
            run: yes
            """
        ),
        9,
        "a run token must be a string or a number, not true/false",
    ),
    (
        "run-token-true-in-a-mapping",
        job_with_spec(
            """            targets: {all: true}
            steps: [{name: stop, definition: Bundle Stop, properties: {bundleId: 1}}]
            run: {token: yes, reset: true}
            """
        ),
        9,
        "a run token must be a string or a number, not true/false",
    ),
    (
        "run-reset-and-from-step",
        job_with_spec(
            """            targets: {all: true}
            steps: [{name: stop, definition: Bundle Stop, properties: {bundleId: 1}}]
            run: {token: "7", reset: true, fromStep: 0}
            """
        ),
        9,
        "reset and fromStep both say where every target starts: write reset: true (from step 0)"
        " or fromStep: 0, not both",
    ),
    (
        "run-from-a-step-the-job-has-not",
        job_with_spec(
            """            targets: {all: true}
            steps: [{name: stop, definition: Bundle Stop, properties: {bundleId: 1}}]
            run: {token: "7", fromStep: 1}
            """
        ),
        9,
        "fromStep 1 names no step: the job has 1, counted from 0; write 0",
    ),
    (
        "run-option-misspelt",
        job_with_spec(
            """            targets: {all: true}
            steps: [{name: stop, definition: Bundle Stop, properties: {bundleId: 1}}]
            run: {token: "7", rest: true}
            """
        ),
        9,
        "unknown key 'rest'",
    ),
    (
        "schedule-reset-not-a-flag",
        job_with_spec(
            """            targets: {all: true}
            steps: [{name: stop, definition: Bundle Stop, properties: {bundleId: 1}}]
            schedules: [{name: nightly, type: cron, cron: "0 0 2 * * ?", reset: "yes"}]
            """
        ),
        9,
        "expected true or false, found the text 'yes'",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_manifest_is_reported_with_file_line_and_hint(
    write: Write, load: Callable[[], ManifestSet], text: str, line: int, expected: str
) -> None:
    bad = write("bad.yaml", text)
    good = write("good.yaml", MINIMAL_JOB.format(name="still-loads"))

    result = load()

    found = messages(result, bad)
    assert any(expected in message for _, message in found), found
    assert line in [at for at, message in found if expected in message], found
    assert ("acme", "still-loads") in result.jobs, "a bad file must not stop the others"
    assert not messages(result, good)
    assert str(result.errors[0]).startswith(f"{bad}:")


def test_every_error_of_every_file_is_reported_in_one_run(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    first = write("a.yaml", "kind: [\n")
    second = write("b/c.yml", MINIMAL_JOB.format(name="Bad Name"))
    third = write("d.yaml", MINIMAL_JOB.format(name="ok") + "---\n- not a mapping\n")

    result = load()

    assert {d.file for d in result.errors} == {first, second, third}
    assert ("acme", "ok") in result.jobs, "the valid document of a broken file still loads"
    assert result.broken_files == {first, second, third}


def test_documents_before_a_syntax_error_still_load(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    path = write("f.yaml", MINIMAL_JOB.format(name="before") + "---\nkey: [unclosed\n")

    result = load()

    assert ("acme", "before") in result.jobs
    assert [line for line, _ in messages(result, path)] == [12]


def test_one_document_can_carry_several_errors(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    path = write(
        "f.yaml",
        job_with_spec(
            """\
            targets: {devices: [gw-1]}
            steps:
              - {name: a, definition: Bundle Stop, timeout: 5x, properties: {bundleId: 1}}
              - {name: b, definition: Bundle Start, properties: {bundleId: -1}}
            """
        ),
    )

    found = messages(load(), path)

    assert [line for line, _ in found] == [9, 10]
    assert "'5x' is not a duration" in found[0][1]
    assert "greater than or equal to 0" in found[1][1]


def test_text_of_a_message_for_a_wrong_type_in_a_union_is_one_line(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    path = write(
        "f.yaml",
        job_with_spec(
            """\
            targets: {all: true}
            steps:
              - name: conf
                definition: Configuration Put
                properties:
                  configurations:
                    - pid: org.eclipse.kura.Example
                      properties: {rate: {every: 5}}
            """
        ),
    )

    found = messages(load(), path)

    assert found == [
        (
            14,
            "missing required key 'type' in spec.steps[0].properties.configurations[0]"
            ".properties.rate",
        ),
        (
            14,
            "missing required key 'value' in spec.steps[0].properties.configurations[0]"
            ".properties.rate",
        ),
        (14, "unknown key 'every'; allowed keys: type, value"),
    ]


def test_run_is_a_token_or_a_mapping_with_start_options(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    steps = "steps: [{name: a, definition: Bundle Stop, properties: {bundleId: 1}}, {name: b,"
    steps += " definition: Bundle Start, properties: {bundleId: 1}}]"
    forms = {
        "plain": 'run: "7"',
        "number": "run: 7",
        "reset": "run: {token: 7, reset: true}",
        "from": 'run: {token: "7", fromStep: 1}',
    }
    for name, run in forms.items():
        text = job_with_spec(f"targets: {{all: true}}\n{steps}\n{run}\n", name=name)
        write(f"{name}.yaml", text)

    result = load()

    assert not result.errors, result.errors
    spec = {name: result.jobs[("acme", name)].manifest.spec for name in forms}
    assert {name: (s.run_token, s.run_from) for name, s in spec.items()} == {
        "plain": ("7", (False, None)),
        "number": ("7", (False, None)),
        "reset": ("7", (True, None)),
        "from": ("7", (False, 1)),
    }
