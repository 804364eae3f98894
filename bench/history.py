"""Disk of a job fired again and again: bounded by the retention (`history`), not by uptime.

    python -m bench.history [--fires 300] [--keep 20] [--targets 200]

A job of TARGETS devices, half of which fail at every fire (so every fire has something to
do, as a cron job on a flaky fleet), runs FIRES executions on the in-memory link and the
engine's own clock (no broker: what is measured is what the state keeps). The state
directory's bytes are measured after every fire, in the same run, with the retention
`keepExecutions: KEEP` and without any (every execution kept, as before there was a
retention). The targets' journal is compacted whenever it grows past four lines a target,
so the bytes go up and down with it: what is compared is the most the state held over the
last KEEP fires and over fires KEEP+1..2*KEEP (once the retention has started to prune).
Target: the former within 1.1x of the latter, and exactly KEEP execution folders left.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench.report import Row
from jobrunner.device import BrokerSettings, KuraPayload
from jobrunner.engine.core.runtime import EngineSettings
from jobrunner.engine.link.memory import MemoryLink, Sent, error, ok
from jobrunner.engine.service.runner import Runner, RunnerConfig
from jobrunner.state.history import History
from jobrunner.state.records import Trigger, TriggerKind

GROWTH_TARGET = 1.1
STEP = "- {name: stop, definition: Bundle Stop, timeout: 30s, properties: {bundleId: 42}}"


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _reply(sent: Sent) -> KuraPayload:
    """Odd-numbered devices fail every time: each fire retries them (half the fleet)."""
    return error(404, "bundle not found") if int(sent.client_id[3:]) % 2 else ok()


def fire_many(root: Path, targets: int, fires: int, keep: int | None) -> tuple[list[int], int]:
    """Bytes of the state after each fire, and the execution folders left at the end."""
    jobs = root / "jobs.d"
    jobs.mkdir(parents=True)
    devices = ", ".join(f"gw-{n:04d}" for n in range(targets))
    (jobs / "nightly.yaml").write_text(
        "apiVersion: jobrunner/v1\nkind: Job\nmetadata: {name: nightly, scope: acme}\n"
        f"spec:\n  targets: {{devices: [{devices}]}}\n  steps:\n    {STEP}\n"
        '  run: "1"\n'
    )
    history = History(keep_executions=keep) if keep else History(keep_executions=10**9)
    config = RunnerConfig(
        jobs_dir=jobs,
        state_dir=root / "state",
        scope="acme",
        broker=BrokerSettings.from_url("mqtt://127.0.0.1:1", client_id="bench"),
        engine=EngineSettings(durable=False, history=history),
    )
    clock = _Clock()
    sizes = []
    with Runner(
        config,
        link=lambda inbox: MemoryLink(inbox, _reply),
        clock=clock,
    ) as runner:
        (started,) = runner.apply(runner.plan(runner.load())).started
        runner.wait([started])
        sizes.append(_bytes(root / "state"))
        job = runner.reconciler.job("acme", "nightly")
        for _ in range(fires - 1):
            clock.now += 10
            summary = runner.reconciler.start(
                job, Trigger(kind=TriggerKind.SCHEDULE, detail="tick"), revision=None
            )
            runner.wait([("acme", "nightly", summary.id)])
            sizes.append(_bytes(root / "state"))
        folders = len(job.state.paths.execution_ids())
    return sizes, folders


def rows(targets: int = 200, fires: int = 300, keep: int = 20) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="jobrunner-bench-history-") as scratch:
        kept, folders = fire_many(Path(scratch) / "kept", targets, fires, keep)
        unbounded, _ = fire_many(Path(scratch) / "all", targets, fires, None)
    early, late = max(kept[keep : 2 * keep]), max(kept[-keep:])
    growth = late / early
    per_fire = (unbounded[-1] - unbounded[keep - 1]) / (fires - keep)
    holds = growth <= GROWTH_TARGET and folders == keep
    return [
        Row(
            f"history: {fires} fires, keepExecutions {keep}",
            targets=targets,
            state=late,
            target=f"<= {GROWTH_TARGET}x the most after {keep}..{2 * keep} fires; {keep} folders",
            holds=holds,
            note=(
                f"state at most {early:,} B over fires {keep + 1}..{2 * keep}, {late:,} B over"
                f" the last {keep} of {fires} ({growth:.2f}x); {folders} execution folders;"
                f" without a retention {unbounded[-1]:,} B after {fires} fires"
                f" ({unbounded[-1] / late:.1f}x), growing {per_fire:,.0f} B a fire"
            ),
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.history")
    parser.add_argument("--fires", type=int, default=300)  # at least 3 x keep
    parser.add_argument("--keep", type=int, default=20)
    parser.add_argument("--targets", type=int, default=200)
    args = parser.parse_args(argv)
    found = rows(args.targets, args.fires, args.keep)
    for row in found:
        print(f"{row.scenario}: {row.note}; target {row.target}: {'yes' if row.holds else 'NO'}")
    return 0 if all(row.holds for row in found) else 1


if __name__ == "__main__":
    sys.exit(main())
