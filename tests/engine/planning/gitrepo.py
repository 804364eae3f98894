"""A throwaway git repository with signing keys, for the policy tests.

Keys are made for the test and live in its temporary folder: OpenPGP keys with
`gpg --batch --quick-gen-key` (in a GNUPGHOME of their own, whose agent is stopped at the
end), or SSH keys with `ssh-keygen` (verified through a gpg.ssh.allowedSignersFile). Git and
the runner's own `git log` see only this repository's configuration and keyring.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SIGNERS = [kind for kind, tool in (("gpg", "gpg"), ("ssh", "ssh-keygen")) if shutil.which(tool)]


@dataclass
class Person:
    name: str
    email: str
    key: str = ""  # what user.signingkey names: a fingerprint or a private key file
    fingerprint: str = ""  # what a policy lists


@dataclass
class Repo:
    root: Path
    kind: str
    people: dict[str, Person] = field(default_factory=dict)

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=self.root, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def commit(self, who: str, message: str = "change", signed: str | None = None) -> str:
        """Commit everything as `who`, signed with `signed`'s key (None: unsigned)."""
        person = self.people[who]
        options = ["-c", f"user.name={person.name}", "-c", f"user.email={person.email}"]
        if signed is not None:
            options += [
                "-c",
                f"user.signingkey={self.people[signed].key}",
                "-c",
                "commit.gpgsign=true",
            ]
        else:
            options += ["-c", "commit.gpgsign=false"]
        self.git("add", "-A")
        self.git(*options, "commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").strip()


def _gpg_person(home: Path, name: str, email: str) -> Person:
    subprocess.run(
        ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", f"{name} <{email}>",
         "ed25519", "sign", "never"],
        env={"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=True,
    )  # fmt: skip
    listing = subprocess.run(
        ["gpg", "--batch", "--with-colons", "--list-secret-keys", email],
        env={"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fingerprint = next(
        line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr")
    )
    return Person(name, email, fingerprint, fingerprint)


def _ssh_person(folder: Path, name: str, email: str, allowed: Path) -> Person:
    key = folder / f"{name}-key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", email, "-f", str(key)], check=True
    )
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", f"{key}.pub"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    with allowed.open("a") as handle:
        handle.write(f'{email} namespaces="git" {(folder / f"{name}-key.pub").read_text()}')
    return Person(name, email, str(key), fingerprint)


@contextmanager
def signing_repo(
    root: Path, kind: str, monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...]
) -> Iterator[Repo]:
    """A git repository at `root` whose people (alice@example.com, ...) can sign with `kind`."""
    keys = root.parent / f"{root.name}-keys"
    keys.mkdir(mode=0o700)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(keys / "gitconfig"))
    monkeypatch.setenv("GNUPGHOME", str(keys))
    root.mkdir(exist_ok=True)
    repo = Repo(root, kind)
    repo.git("init", "-q", "-b", "main")
    allowed = keys / "allowed-signers"
    allowed.touch()
    for name in names:
        email = f"{name}@example.com"
        repo.people[name] = (
            _gpg_person(keys, name.title(), email)
            if kind == "gpg"
            else _ssh_person(keys, name, email, allowed)
        )
    if kind == "ssh":
        repo.git("config", "gpg.format", "ssh")
        repo.git("config", "gpg.ssh.allowedSignersFile", str(allowed))
    try:
        yield repo
    finally:
        if kind == "gpg":
            subprocess.run(
                ["gpgconf", "--kill", "gpg-agent"],
                env={"GNUPGHOME": str(keys), "PATH": "/usr/bin:/bin"},
                capture_output=True,
                check=False,
            )
