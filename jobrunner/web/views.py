"""The JSON of the API: the objects of `jobrunner status -o json`, a job's targets paged.

A job's view is computed once per change of the job (at most every `reader.FRESH` seconds,
however many browsers look), then each request takes its page of targets from it: the page
of a job with 10,000 targets costs a filter and a slice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobrunner.engine.attention import by_attention
from jobrunner.engine.status import TargetViews, devices_view, job_view, summary_row
from jobrunner.manifests import ManifestSet
from jobrunner.manifests.selectors import Selector
from jobrunner.state.jobstore import KEPT_SUMMARIES, JobState
from jobrunner.web.reader import FleetReader

DEFAULT_LIMIT = 500
MAX_LIMIT = 10_000
SHOWN_EXECUTIONS = KEPT_SUMMARIES
"""A job's newest executions in its view: those the engine holds, so that a job that ran a
million times costs its view no read of the storage (`status JOB` lists them all)."""


@dataclass(frozen=True)
class TargetFilter:
    """Which targets of a job a page holds: by status, wave, or a part of the client id."""

    status: frozenset[str] = frozenset()
    wave: str | None = None
    text: str = ""
    offset: int = 0
    limit: int = DEFAULT_LIMIT

    def keeps(self, target: dict[str, Any]) -> bool:
        return (
            (not self.status or target["status"] in self.status)
            and (self.wave is None or target.get("wave") == self.wave)
            and (not self.text or self.text in target["clientId"])
        )


@dataclass
class Views:
    """The API's objects, from a FleetReader; the daemon's own facts are added by the app."""

    reader: FleetReader
    _cache: dict[tuple[str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _made: dict[tuple[str, str], dict[Any, TargetViews]] = field(default_factory=dict)
    _rows: dict[tuple[str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)

    def jobs(self) -> list[dict[str, Any]]:
        """One row per job, as `status -o json` without JOB prints them, what needs attention
        first (`attention` says what: aborted, failed, awaiting-approval, ...)."""
        rows = []
        recorded = self.reader.recorded()
        for key in recorded:
            loaded = self.reader.job(*key)
            if loaded is None:
                problem = self.reader.problems.get(key)
                if problem is not None:
                    rows.append({"scope": key[0], "name": key[1], "error": problem})
                continue
            # A thousand jobs' counts and next fire times cost tens of milliseconds; a job
            # that did not change keeps its row (a fire changes its record).
            rows.append(_made_once(self._rows, key, loaded, summary_row))
        for gone in set(self._rows) - set(recorded):
            del self._rows[gone]
        return by_attention(rows)

    def exists(self, scope: str, name: str) -> bool:
        """The job is recorded (and readable), without making its view."""
        return self.reader.job(scope, name) is not None

    def job(self, scope: str, name: str, page: TargetFilter | None = None) -> dict[str, Any] | None:
        """`status JOB -o json`, its targets filtered and paged (`page` says how); None when
        the job is not recorded."""
        full = self._full(scope, name)
        if full is None:
            return None
        page = page or TargetFilter()
        chosen = [t for t in full["targets"] if page.keeps(t)]
        view = dict(full)
        view["targets"] = chosen[page.offset : page.offset + page.limit]
        view["page"] = {"offset": page.offset, "limit": page.limit, "total": len(chosen)}
        return view

    def devices(
        self, manifests: ManifestSet | None, selector: Selector | None = None
    ) -> list[dict[str, Any]]:
        """Every known device (`selector`: those it matches)."""
        return devices_view(self.reader.registry(), manifests, selector)

    def _full(self, scope: str, name: str) -> dict[str, Any] | None:
        loaded = self.reader.job(scope, name)
        if loaded is None:
            self._cache.pop((scope, name), None)
            self._made.pop((scope, name), None)
            return None
        made = self._made.setdefault((scope, name), {})
        return _made_once(
            self._cache,
            (scope, name),
            loaded,
            lambda job: job_view(job, made, newest=SHOWN_EXECUTIONS),
        )


def _made_once(
    store: dict[tuple[str, str], tuple[int, dict[str, Any]]],
    key: tuple[str, str],
    loaded: tuple[JobState, int],
    make: Callable[[JobState], dict[str, Any]],
) -> dict[str, Any]:
    """`make(job)`, made again only when the job's generation changed since it was kept."""
    job, generation = loaded
    kept = store.get(key)
    if kept is None or kept[0] != generation:
        kept = store[key] = (generation, make(job))
    return kept[1]
