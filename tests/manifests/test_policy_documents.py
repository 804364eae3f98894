"""Policy documents: what they may say, and what is wrong with them, at its line."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobrunner.manifests import ManifestSet

from .conftest import Write, messages

FINGERPRINT = "C7EF 64AE F662 779C 923E  17C8 9D1A 6D41 06DB 6097"
SSH = "SHA256:ZwU2JnxMqYxXo85fPsUPX1O8voMZCrRE8fqS0ttJoP4"


def policy(spec: str, scope: str = "acme") -> str:
    return f"apiVersion: jobrunner/v1\nkind: Policy\nmetadata: {{scope: {scope}}}\nspec:\n{spec}"


def test_a_policy_is_read_and_normalized(write: Write, load: Callable[[], ManifestSet]) -> None:
    write(
        "policy.yaml",
        policy(
            f"  allowedAuthors: [Alice@Example.COM]\n"
            f'  allowedSigningKeys: ["{FINGERPRINT.lower()}", "{SSH}"]\n'
        ),
    )

    result = load()

    assert result.diagnostics == []
    spec = result.policies["acme"].manifest.spec
    assert spec.allowed_authors == ["alice@example.com"]
    assert spec.allowed_signing_keys == [FINGERPRINT.replace(" ", ""), SSH]


@pytest.mark.parametrize(
    ("spec", "line", "says"),
    [
        ("  allowedAuthors: []\n", 4, "a policy lists allowedAuthors, allowedSigningKeys or both"),
        ("  allowedAuthors: [alice]\n", 5, "'alice' is not an e-mail address"),
        ("  allowedSigningKeys: [9D1A6D4106DB6097]\n", 5, "short key ids can be forged"),
        ("  allowedSigningKeys: ['SHA256:abc']\n", 5, "is not a full key fingerprint"),
        ("  allowedAuthor: [a@b.c]\n", 5, "unknown key 'allowedAuthor'; did you mean"),
    ],
)
def test_a_bad_policy_is_an_error_at_its_line(
    write: Write, load: Callable[[], ManifestSet], spec: str, line: int, says: str
) -> None:
    path = write("policy.yaml", policy(spec))

    found = messages(load(), path)

    assert [number for number, _ in found] == [line], found
    assert says in found[0][1]


def test_a_scope_has_one_policy(write: Write, load: Callable[[], ManifestSet]) -> None:
    first = write("a.yaml", policy("  allowedAuthors: [a@example.com]\n"))
    second = write("b.yaml", policy("  allowedAuthors: [b@example.com]\n"))

    result = load()

    assert messages(result, second) == [
        (
            1,
            f"scope 'acme' already has a policy at {first}:1;"
            " merge the two: a scope has one policy",
        )
    ]
    assert result.policies["acme"].origin.file == first
    assert [(r.kind, r.scope) for r in result.rejected] == [("Policy", "acme")]
