"""Who may manage the jobs of a scope: a `Policy` in git, checked against git history.

A plan applies a job's manifest only if the commit that last changed its file passes the
policy of the job's scope (docs/policy.md):

- `allowedAuthors`: the commit's author e-mail is listed;
- with `--require-signed` (`require_signed`): the commit carries a good signature (`%G?` is
  G, or U for a key the policy lists by fingerprint), and, when the policy lists
  `allowedSigningKeys`, by one of those keys. A scope without a policy then accepts any
  good signature that git can verify with the runner's keyring or allowed-signers file.

What is refused becomes `Action.REFUSED` with the file, line and why; the reconciler leaves
such a job exactly as recorded, like a conflict. Only what would change is checked: a job
whose manifest changes nothing needs no permission.

The policy itself is guarded by the one in force before it: the accepted policy of each
scope is recorded (`STATE/scopes/SCOPE/policy.json`) and a change to it (or its removal)
applies only if the commit that made it passes the recorded policy. The first policy of a
scope is trusted on first use, checked against itself.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobrunner.engine.plan import Action, JobPlan, Plan
from jobrunner.errors import StateError
from jobrunner.manifests import Diagnostic, ManifestSet, Policy, Severity
from jobrunner.state.files import read_json, write_json
from jobrunner.state.layout import StateDir

POLICY_FORMAT = "jobrunner.policy"
POLICY_VERSION = 1
_FIELDS = ("%H", "%G?", "%GF", "%GP", "%ae")
_SIGNATURES = {
    "G": "a good signature",
    "U": "a good signature by a key of unknown validity",
    "N": "no signature",
    "B": "a bad signature",
    "X": "a good signature that has expired",
    "Y": "a good signature by a key that has expired",
    "R": "a good signature by a revoked key",
    "E": "a signature git cannot check (is the key in the runner's keyring, or its"
    " gpg.ssh.allowedSignersFile?)",
}


@dataclass(frozen=True)
class Rules:
    """What a policy allows (e-mails lower-case, OpenPGP fingerprints upper-case)."""

    authors: frozenset[str] = frozenset()
    keys: frozenset[str] = frozenset()
    where: str = ""
    """Where the policy is written (FILE:LINE), or recorded from, for messages."""
    file: str = ""
    closed: bool = False
    """Allows nothing (the recorded policy cannot be read)."""

    @classmethod
    def of(cls, policy: Policy, file: Path, line: int, scope: str) -> Rules:
        spec = policy.spec
        where = f"the policy of scope '{scope}' ({file}:{line})"
        return cls(
            frozenset(spec.allowed_authors), frozenset(spec.allowed_signing_keys), where, str(file)
        )

    def same_as(self, other: Rules | None) -> bool:
        return other is not None and (self.authors, self.keys) == (other.authors, other.keys)


@dataclass(frozen=True)
class Commit:
    """The commit that last changed a file, as `git log -1 -- FILE` finds it."""

    sha: str
    signature: str
    key: str
    primary_key: str
    author: str

    @property
    def short(self) -> str:
        return self.sha[:12]


@dataclass(frozen=True)
class PolicyChange:
    """A policy accepted by a plan, recorded when the plan is applied (None: removed)."""

    scope: str
    rules: Rules | None
    file: str
    commit: str


class GitHistory:
    """`git log` and `git status` of manifest files, asked once per file."""

    def __init__(self, git: str = "git") -> None:
        self.git = git
        self._changes: dict[Path, Commit | str] = {}

    def last_change(self, file: Path) -> Commit | str:
        """The commit that last changed `file`, or why there is none to judge."""
        if file not in self._changes:
            self._changes[file] = self._read(file)
        return self._changes[file]

    def _read(self, file: Path) -> Commit | str:
        folder = file.parent
        while not folder.is_dir() and folder != folder.parent:
            folder = folder.parent  # a removed manifest: ask from a folder that exists
        found = self._run(folder, "rev-parse", "--show-toplevel")
        if isinstance(found, _Failed):
            return f"{file} is not in a git repository ({found.reason})"
        top = Path(found.strip())
        path = os.path.relpath(file.resolve(), top)
        status = self._run(top, "status", "--porcelain", "--untracked-files=all", "--", path)
        if isinstance(status, _Failed):
            return f"git cannot tell whether {file} has uncommitted changes ({status.reason})"
        if status.strip():
            what = "is not committed" if status.startswith("??") else "has uncommitted changes"
            return f"{file} {what}: only committed changes can be judged"
        log = self._run(top, "log", "-1", f"--format={'%x00'.join(_FIELDS)}", "--", path)
        if isinstance(log, _Failed):
            return f"git log of {file} failed ({log.reason})"
        parts = log.strip("\n").split("\0")
        if len(parts) != len(_FIELDS) or not parts[0]:
            return f"{file} has no commit in git history"
        return Commit(*parts)

    def _run(self, folder: Path, *args: str) -> str | _Failed:
        command = [self.git, "-c", "log.showSignature=false", *args]
        environment = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        try:
            done = subprocess.run(
                command,
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env=environment,
            )
        except FileNotFoundError:
            return _Failed("git is not installed")
        except (OSError, subprocess.TimeoutExpired) as error:
            return _Failed(str(error))
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            return _Failed(lines[-1] if lines else f"git exited with {done.returncode}")
        return done.stdout


@dataclass(frozen=True)
class _Failed:
    reason: str


def judge(commit: Commit | str, rules: Rules | None, require_signed: bool) -> str | None:
    """Why the commit that last changed a manifest may not change it (None: it may)."""
    if rules is None and not require_signed:
        return None
    if rules is not None and rules.closed:
        return f"{rules.where} allows nothing until it is repaired"
    if isinstance(commit, str):
        return commit
    who = f"commit {commit.short} by {commit.author}"
    if rules is not None and rules.authors and commit.author.lower() not in rules.authors:
        return (
            f"last changed in {who}, who is not in allowedAuthors of {rules.where}; ask an"
            " allowed author to commit the change, or add the author to the policy"
        )
    if not require_signed:
        return None
    keys = {commit.key.upper(), commit.primary_key.upper(), commit.key, commit.primary_key}
    listed = rules is not None and bool(rules.keys & keys)
    if commit.signature != "G" and not (commit.signature == "U" and listed):
        found = _SIGNATURES.get(commit.signature, f"signature status {commit.signature!r}")
        return (
            f"last changed in {who}, which has {found}; --require-signed applies only signed"
            " commits"
        )
    if rules is not None and rules.keys and not listed:
        return (
            f"last changed in {who}, signed by key {commit.primary_key or commit.key}, which is"
            f" not in allowedSigningKeys of {rules.where}"
        )
    return None


# --- recorded policies ----------------------------------------------------------------------------


def policy_file(state: StateDir, scope: str) -> Path:
    return state.scope(scope) / "policy.json"


def recorded_rules(state: StateDir, scope: str) -> Rules | None:
    """The policy in force for `scope` after the last applied plan, if any."""
    path = policy_file(state, scope)
    try:
        record = read_json(path, POLICY_FORMAT, POLICY_VERSION)
    except FileNotFoundError:
        return None
    authors, keys = record.get("allowedAuthors"), record.get("allowedSigningKeys")
    if not isinstance(authors, list) or not isinstance(keys, list):
        raise StateError(f"{path}: not a policy record; restore it from a backup")
    file, commit = str(record.get("file")), str(record.get("commit"))[:12]
    where = f"the policy of scope '{scope}' recorded from {file} at commit {commit or '-'}"
    return Rules(frozenset(map(str, authors)), frozenset(map(str, keys)), where, file)


def record_policies(state: StateDir, changes: Sequence[PolicyChange]) -> None:
    """Record the policies a plan accepted (the reconciler calls this when it applies it)."""
    for change in changes:
        path = policy_file(state, change.scope)
        if change.rules is None:
            path.unlink(missing_ok=True)
            continue
        document: dict[str, Any] = {
            "format": POLICY_FORMAT,
            "version": POLICY_VERSION,
            "allowedAuthors": sorted(change.rules.authors),
            "allowedSigningKeys": sorted(change.rules.keys),
            "file": change.file,
            "commit": change.commit,
        }
        write_json(path, document)


# --- reviewing a plan ---------------------------------------------------------------------------


@dataclass
class Review:
    """One plan's review: the policy in force per scope, and what it refused."""

    plan: Plan
    state: StateDir
    require_signed: bool
    history: GitHistory = field(default_factory=GitHistory)
    in_force: dict[str, Rules | None] = field(default_factory=dict)

    def run(self) -> None:
        manifests = self.plan.manifests
        scopes = set(manifests.policies) | {
            s for s in self.state.scopes() if policy_file(self.state, s).exists()
        }
        for scope in sorted(scopes):
            self.in_force[scope] = self._policy(scope, manifests)
        for job in self.plan.jobs:
            if job.changes_something and job.action not in (Action.CONFLICT, Action.INVALID):
                self._check(job)

    def _policy(self, scope: str, manifests: ManifestSet) -> Rules | None:
        """The rules in force for `scope`: the declared policy if its change is allowed."""
        try:
            recorded = recorded_rules(self.state, scope)
        except StateError as error:
            self._error(policy_file(self.state, scope), 1, str(error))
            return Rules(where=f"the unreadable policy record of scope '{scope}'", closed=True)
        declared = manifests.policies.get(scope)
        if declared is None:
            pending = manifests.unreadable_files or any(
                r.kind == "Policy" and r.scope == scope for r in manifests.rejected
            )
            if recorded is None or pending:
                return recorded  # a policy that does not validate is not taken as removed
            return self._change(scope, None, recorded, Path(recorded.file), 1)
        origin = declared.origin
        line = origin.source.value_line(())
        rules = Rules.of(declared.manifest, origin.file, line, scope)
        if rules.same_as(recorded):
            return rules
        return self._change(scope, rules, recorded, origin.file, line)

    def _change(
        self, scope: str, rules: Rules | None, recorded: Rules | None, file: Path, line: int
    ) -> Rules | None:
        """A new, changed or removed policy: allowed by the recorded one (or, first, itself)."""
        commit = self.history.last_change(file)
        problem = judge(commit, recorded or rules, self.require_signed)
        if problem is not None:
            what = "removal of the policy" if rules is None else "policy"
            stays = (
                f"the policy in force stays ({recorded.where})"
                if recorded is not None
                else "no change to the scope's jobs applies until a policy is accepted"
            )
            self._error(file, line, f"the {what} of scope '{scope}' is refused: {problem}; {stays}")
            if recorded is None:  # closed, not open: a refused policy never widens access
                return Rules(where=f"the refused policy of scope '{scope}'", closed=True)
            return recorded
        sha = commit.sha if isinstance(commit, Commit) else ""
        self.plan.policy_changes.append(PolicyChange(scope, rules, str(file), sha))
        return rules

    def _check(self, job: JobPlan) -> None:
        rules = self.in_force.get(job.scope)
        if rules is None and not self.require_signed:
            return
        if job.declared is not None:
            file, line = job.declared.origin.file, job.declared.origin.line("metadata", "name")
        elif job.record is not None and job.record.source is not None:
            file, line = Path(job.record.source.file), job.record.source.line
        else:
            return
        problem = judge(self.history.last_change(file), rules, self.require_signed)
        if problem is None:
            return
        job.action = Action.REFUSED
        job.problems = [f"{file}:{line}: refused by policy: {problem}"]
        job.start = job.stop = job.blocked = None

    def _error(self, file: Path, line: int, message: str) -> None:
        self.plan.manifests.diagnostics.append(Diagnostic(file, line, message, Severity.ERROR))


def review(plan: Plan, state: StateDir, require_signed: bool = False) -> None:
    """Apply the policies (and `--require-signed`) to `plan`, in place; see the module doc."""
    recorded = any(policy_file(state, scope).exists() for scope in state.scopes())
    if not (require_signed or plan.manifests.policies or recorded):
        return  # no policy anywhere: no git history to read
    Review(plan, state, require_signed).run()
