"""Label selectors: kubectl's syntax, over labels and reported facts, and every bad one at its
line with the character where it goes wrong."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobrunner.manifests import ManifestSet
from jobrunner.manifests.kinds import Device
from jobrunner.manifests.selectors import (
    SelectorError,
    Version,
    device_facts,
    parse_selector,
)

from .conftest import Write, job_with_spec, messages

TURIN_NEW = device_facts(
    {"site": "turin", "line": "3"},
    model="RGATE-10-14",
    firmware="fw-5.4.1",
    version="KURA_5.4.1",
    applications=["CMD-V1", "KEYS-V1"],
)
TURIN_OLD = device_facts(
    {"site": "turin", "line": "5", "legacy": "yes"},
    model="RPI-3B",
    version="KURA_4.1.0",
    applications=["CMD-V1"],
)
MILAN = device_facts({"site": "milan"}, version="ESF_7.3.0-SNAPSHOT")


MATCHING: list[tuple[str, set[str]]] = [
    ("site=turin", {"new", "old"}),
    ("site==turin", {"new", "old"}),
    ("site!=turin", {"milan"}),
    ("line in (3,4)", {"new"}),
    ("line notin (3, 4)", {"old", "milan"}),
    ("legacy", {"old"}),
    ("!legacy", {"new", "milan"}),
    ("site=turin,line in (3,4),!legacy", {"new"}),
    (" site = turin , !legacy ", {"new"}),
    ("kura.version>=5.4", {"new", "milan"}),
    ("kura.version>=5.4.1", {"new", "milan"}),
    ("kura.version>5.4.1", {"milan"}),
    ("kura.version<5.4", {"old"}),
    ("kura.version<=4.1", {"old"}),
    ("kura.version=5.4.1", {"new"}),
    ("kura.version=7.3.0-SNAPSHOT", {"milan"}),
    ("kura.model=RPI-3B", {"old"}),
    ("kura.firmware>=5", {"new"}),
    ("kura.app=KEYS-V1", {"new"}),
    ("kura.app in (KEYS-V1,CERT-V1)", {"new"}),
    ("kura.app!=KEYS-V1", {"old", "milan"}),
    ("kura.app", {"new", "old"}),
    ("!kura.app", {"milan"}),
    ("site=turin,kura.version>=5.4", {"new"}),
]


@pytest.mark.parametrize(("selector", "matched"), MATCHING)
def test_a_selector_matches_by_labels_and_reported_facts(selector: str, matched: set[str]) -> None:
    fleet = {"new": TURIN_NEW, "old": TURIN_OLD, "milan": MILAN}

    parsed = parse_selector(selector)

    assert {name for name, facts in fleet.items() if parsed.matches(facts)} == matched


def test_whether_a_term_holds_and_why_it_does_not_always_agree() -> None:
    """`holds` is `why_not` without the words (the fast path over a big fleet)."""
    texts = [selector for selector, _ in MATCHING]
    texts += ["kura.version>=1-latest", "kura.firmware<6", "!kura.model", "line>=4"]
    for text in texts:
        selector = parse_selector(text)
        for facts in (TURIN_NEW, TURIN_OLD, MILAN, device_facts(version="n/a"), {}):
            for term in selector.terms:
                assert term.holds(facts) == (term.why_not(facts) is None), (text, facts)


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("5.4", "5.10"),  # numbers, not text: 5.10 is the later one
        ("5.4", "5.4.1"),
        ("7.3.0-SNAPSHOT", "7.3.0"),  # a pre-release before its release
        ("4.1.0", "5"),
        ("fw-5.4.1", "fw-5.4.2"),
        ("7.3.0-RC1", "7.3.0-RC2"),
    ],
)
def test_versions_compare_by_their_dotted_numbers(low: str, high: str) -> None:
    assert Version.read(low) < Version.read(high)  # type: ignore[operator]


def test_a_missing_part_of_a_version_is_zero() -> None:
    assert Version.read("5.4") == Version.read("5.4.0")
    assert parse_selector("kura.version>=5.4").matches(device_facts(version="5.4.0"))


@pytest.mark.parametrize(
    ("selector", "facts", "why"),
    [
        ("site=turin,kura.version>=5.4", TURIN_OLD, "kura.version 4.1.0 < 5.4"),
        ("site=turin", MILAN, "site is milan, not turin"),
        ("line in (3,4)", TURIN_OLD, "line is 5, not in (3, 4)"),
        ("!legacy", TURIN_OLD, "legacy is yes"),
        ("legacy", TURIN_NEW, "no label legacy"),
        ("kura.model=RPI-3B", MILAN, "no kura.model reported"),
        ("kura.app=KEYS-V1", TURIN_OLD, "kura.app lists none of KEYS-V1"),
        ("kura.app!=KEYS-V1", TURIN_NEW, "kura.app lists KEYS-V1"),
        ("kura.version>=5.4", device_facts(version="unknown"), "'unknown' is not a version"),
    ],
)
def test_a_device_that_does_not_match_is_told_the_first_term_it_fails(
    selector: str, facts: dict[str, tuple[str, ...]], why: str
) -> None:
    assert why in (parse_selector(selector).why_not(facts) or "")


def test_kura_and_esf_prefixes_are_stripped_from_the_version() -> None:
    assert device_facts(version="KURA_5.4.1")["kura.version"] == ("5.4.1",)
    assert device_facts(version="ESF_7.3.0")["kura.version"] == ("7.3.0",)
    assert device_facts(version="5.5.0")["kura.version"] == ("5.5.0",)


# Each kind of bad selector: the text, the character (from 1) and what the message says.
BAD: list[tuple[str, str, int, str]] = [
    ("empty", "", 1, "the selector is empty; write terms such as"),
    ("blank", "   ", 1, "the selector is empty"),
    ("double-comma", "site=turin,,!legacy", 12, "a term is missing (two commas"),
    ("trailing-comma", "site=turin,", 12, "a term is missing"),
    ("unclosed-list", "site=turin,line in (3,4", 24, "the list opened at character 20 is not"),
    ("list-without-paren", "line in 3,4", 9, "expected '(' after 'in', found '3,4'"),
    ("empty-list", "line in ()", 10, "expected a value in the list of 'line'"),
    ("list-separator", "line in (3;4)", 11, "expected ',' or ')' in the list of 'line'"),
    ("missing-value", "site=", 6, "expected a value after site=, found the end"),
    ("bad-operator", "site~turin", 5, "expected an operator after 'site'"),
    ("space-in-value", "site=tu rin", 9, "expected ',' before the next term, found 'rin'"),
    ("bad-key", "-site=turin", 1, "'-site' is not a label key"),
    ("no-key", "=turin", 1, "expected a label key"),
    ("unknown-fact", "kura.versoin>=5.4", 1, "did you mean 'kura.version'?"),
    ("not-a-version", "kura.version>=latest", 15, "'latest' is not one; write digits"),
    ("apps-have-no-order", "kura.app>=2", 11, "kura.app holds application ids, which have"),
    ("negated-value", "!legacy=yes", 8, "to exclude a value write legacy!=VALUE"),
]


@pytest.mark.parametrize(
    ("text", "character", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_a_bad_selector_says_where_and_what_would_be_right(
    text: str, character: int, expected: str
) -> None:
    with pytest.raises(SelectorError) as raised:
        parse_selector(text)

    assert raised.value.position + 1 == character, str(raised.value)
    assert expected in str(raised.value)
    assert f"at character {character}:" in str(raised.value)


@pytest.mark.parametrize(("text", "character", "expected"), [b[1:] for b in BAD[2:]])
def test_a_bad_selector_in_a_manifest_is_reported_at_its_line(
    write: Write, load: Callable[[], ManifestSet], text: str, character: int, expected: str
) -> None:
    bad = write(
        "bad.yaml",
        job_with_spec(
            f"""\
            targets:
              devices: [gw-1]
              selector: {text!r}
            steps: [{{name: stop, definition: Bundle Stop, properties: {{bundleId: 1}}}}]
            """
        ),
    )
    good = write("good.yaml", job_with_spec("targets: {selector: site=turin}\n" + STEPS, "ok"))

    result = load()

    assert messages(result, bad) == [
        (9, next(m for _, m in messages(result, bad) if expected in m))
    ]
    assert f"at character {character}:" in messages(result, bad)[0][1]
    assert ("acme", "ok") in result.jobs, "a bad selector must not stop the other jobs"
    assert not messages(result, good)


STEPS = "steps: [{name: stop, definition: Bundle Stop, properties: {bundleId: 1}}]\n"


def test_a_selector_alone_selects(write: Write, load: Callable[[], ManifestSet]) -> None:
    path = write("job.yaml", job_with_spec("targets: {selector: 'kura.version>=5.4'}\n" + STEPS))

    result = load()

    assert not messages(result, path)
    assert result.jobs[("acme", "job-1")].manifest.spec.targets.selector == "kura.version>=5.4"


def test_a_selector_no_registered_device_can_match_is_a_warning(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    # The registry of conftest has gw-1 and gw-2, neither with a label.
    write("labels.yaml", "")
    path = write("job.yaml", job_with_spec("targets: {selector: 'site=turin'}\n" + STEPS))

    result = load()

    assert [(w.line, w.message) for w in result.warnings if w.file == path] == [
        (
            7,
            "selector 'site=turin': term 'site=turin' holds for no device among the registered"
            " devices of scope 'acme'",
        )
    ]
    assert ("acme", "job-1") in result.jobs, "a warning, not an error: the job is declared"


def test_a_selector_over_facts_alone_is_no_warning_in_git(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    """What the devices report is not in git: validate cannot tell (plan does)."""
    path = write("job.yaml", job_with_spec("targets: {selector: 'kura.app=KEYS-V1'}\n" + STEPS))

    result = load()

    assert not [w for w in result.diagnostics if w.file == path]


LABELLED = """\
apiVersion: jobrunner/v1
kind: DeviceList
metadata: {scope: acme}
devices:
  - {clientId: gw-7, labels: {site: turin}}
  - {clientId: gw-8, labels: {site: milan}}
"""


@pytest.mark.parametrize(
    ("selector", "refused"),
    [
        ("site=turin", []),
        ("site=turin,kura.version>=5.4", []),  # facts unknown in git: gw-7 may match
        ("site=milan", ["device 'gw-7' of wave 'canary' is not a target of job 'job-1'"]),
    ],
)
def test_a_wave_may_name_a_device_the_selector_could_choose(
    write: Write, load: Callable[[], ManifestSet], selector: str, refused: list[str]
) -> None:
    write("labelled.yaml", LABELLED)
    path = write(
        "job.yaml",
        job_with_spec(
            f"""\
            targets: {{selector: {selector!r}}}
            {STEPS}
            rollout:
              waves: [{{name: canary, devices: [gw-7]}}, {{name: rest}}]
            """
        ),
    )

    result = load()

    assert [m.split(";")[0] for _, m in messages(result, path)] == refused


def test_a_label_written_as_a_yaml_number_or_boolean_is_the_text_a_selector_writes() -> None:
    device = Device.model_validate(
        {"clientId": "gw-1", "labels": {"legacy": True, "spare": False, "line": 3, "rev": 1.5}}
    )
    assert device.labels == {"legacy": "true", "spare": "false", "line": "3", "rev": "1.5"}
    facts = device_facts(device.labels)
    assert parse_selector("legacy=true,line in (3,4),rev=1.5").matches(facts)
