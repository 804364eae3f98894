"""Who may manage the jobs of a scope: a `Policy` in git, checked against git history.

A plan applies a job's manifest only if the commit that last changed its file passes the
policy of the job's scope (docs/policy.md):

- `allowedAuthors`: the commit's author e-mail is listed;
- with `--require-signed` (`require_signed`): the commit carries a good signature (`%G?` is
  G, or U for a key the policy lists by fingerprint), and, when the policy lists
  `allowedSigningKeys`, by one of those keys. A scope without a policy then accepts any
  good signature that git can verify with the runner's keyring or allowed-signers file.

The review returns verdicts: the plan makes a refused job `Action.REFUSED` with the file,
line and why, and the reconciler leaves such a job exactly as recorded, like a conflict. Only
what would change is checked: a job whose manifest changes nothing needs no permission.

The policy itself is guarded by the one in force before it: the accepted policy of each
scope is recorded (`STATE/scopes/SCOPE/policy.json`) and a change to it (or its removal)
applies only if the commit that made it passes the recorded policy. The first policy of a
scope is trusted on first use, checked against itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jobrunner.engine.planning.git import Commit, GitHistory
from jobrunner.errors import StateError
from jobrunner.manifests import Diagnostic, ManifestSet, Policy, Severity
from jobrunner.state.layout import StateDir
from jobrunner.state.policies import PolicyRecord, load_policy, policy_file, save_policy

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
class PolicyChange:
    """A policy accepted by a plan, recorded when the plan is applied (None: removed)."""

    scope: str
    rules: Rules | None
    file: str
    commit: str


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


def recorded_rules(state: StateDir, scope: str) -> Rules | None:
    """The policy in force for `scope` after the last applied plan, if any."""
    record = load_policy(state, scope)
    if record is None:
        return None
    where = (
        f"the policy of scope '{scope}' recorded from {record.file} at commit"
        f" {record.commit[:12] or '-'}"
    )
    return Rules(
        frozenset(record.allowed_authors), frozenset(record.allowed_signing_keys), where,
        record.file,
    )  # fmt: skip


def record_policies(state: StateDir, changes: Sequence[PolicyChange]) -> None:
    """Record the policies a plan accepted (the reconciler calls this when it applies it)."""
    for change in changes:
        rules = change.rules
        record = (
            None
            if rules is None
            else PolicyRecord(
                allowed_authors=sorted(rules.authors),
                allowed_signing_keys=sorted(rules.keys),
                file=change.file,
                commit=change.commit,
            )
        )
        save_policy(state, change.scope, record)


# --- reviewing a plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A job whose manifest would change something, to be judged: where it is written."""

    scope: str
    name: str
    file: Path
    line: int


@dataclass
class Verdicts:
    """What the policies say of a plan: which job changes are refused and why, the policies
    it accepts (recorded when the plan is applied), and the errors about policies."""

    refused: dict[tuple[str, str], str] = field(default_factory=dict)
    """(scope, name) -> `FILE:LINE: refused by policy: ...`."""
    accepted: list[PolicyChange] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


@dataclass
class _Review:
    manifests: ManifestSet
    state: StateDir
    require_signed: bool
    verdicts: Verdicts
    history: GitHistory = field(default_factory=GitHistory)
    in_force: dict[str, Rules | None] = field(default_factory=dict)

    def run(self, changes: Iterable[Change]) -> None:
        scopes = set(self.manifests.policies) | {
            s for s in self.state.scopes() if self.state.storage.exists(policy_file(self.state, s))
        }
        for scope in sorted(scopes):
            self.in_force[scope] = self._policy(scope)
        for change in changes:
            self._check(change)

    def _policy(self, scope: str) -> Rules | None:
        """The rules in force for `scope`: the declared policy if its change is allowed."""
        manifests = self.manifests
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
        self.verdicts.accepted.append(PolicyChange(scope, rules, str(file), sha))
        return rules

    def _check(self, change: Change) -> None:
        rules = self.in_force.get(change.scope)
        if rules is None and not self.require_signed:
            return
        problem = judge(self.history.last_change(change.file), rules, self.require_signed)
        if problem is not None:
            self.verdicts.refused[(change.scope, change.name)] = (
                f"{change.file}:{change.line}: refused by policy: {problem}"
            )

    def _error(self, file: Path, line: int, message: str) -> None:
        self.verdicts.diagnostics.append(Diagnostic(file, line, message, Severity.ERROR))


def review(
    manifests: ManifestSet, state: StateDir, changes: Iterable[Change], require_signed: bool
) -> Verdicts:
    """What the scopes' policies (and `--require-signed`) say of the job `changes` a plan
    would make; see the module's docstring."""
    verdicts = Verdicts()
    recorded = any(state.storage.exists(policy_file(state, s)) for s in state.scopes())
    if require_signed or manifests.policies or recorded:  # else no git history to read
        _Review(manifests, state, require_signed, verdicts).run(changes)
    return verdicts
