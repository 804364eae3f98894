"""Jobs directories for the scenarios: a DeviceList of the bench fleet and the jobs."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from bench.floor import device_ids

HEADER = "apiVersion: jobrunner/v1\n"

SYNC_STEPS = """\
    - name: run-true
      definition: Command Execution
      timeout: 30s
      properties: {command: "true"}
    - name: stop-bundle
      definition: Bundle Stop
      timeout: 30s
      properties: {bundleId: 42}
    - name: start-bundle
      definition: Bundle Start
      timeout: 30s
      properties: {bundleId: 42}
"""

ASYNC_STEPS = """\
    - name: install-agent
      definition: Package Download / Install
      timeout: 30s
      completionTimeout: 10m
      properties:
        uri: https://repo.example.com/kura/com.acme.monitoring.agent-2.4.0.dp
        name: com.acme.monitoring.agent
        version: 2.4.0
"""


def device_list(scope: str, count: int, tags_every: int = 0) -> str:
    """A DeviceList of `count` devices; with `tags_every`, device n carries tag `group-{n % k}`."""
    lines = [HEADER, "kind: DeviceList\n", f"metadata: {{scope: {scope}}}\n", "devices:\n"]
    for n, client_id in enumerate(device_ids(count)):
        tags = f", tags: [fleet, group-{n % tags_every}]" if tags_every else ", tags: [fleet]"
        lines.append(f"  - {{clientId: {client_id}{tags}}}\n")
    return "".join(lines)


def job(scope: str, name: str, steps: str, targets: str, run: str | None, extra: str = "") -> str:
    run_line = f'  run: "{run}"\n' if run is not None else ""
    return (
        f"{HEADER}kind: Job\nmetadata:\n  name: {name}\n  scope: {scope}\n"
        f"spec:\n  targets: {targets}\n  steps:\n{steps}{extra}{run_line}"
    )


def rollout(folder: Path, scope: str, devices: int, steps: str, name: str) -> Path:
    """A jobs directory with the fleet's DeviceList and one job over all of it, to run now."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "devices.yaml").write_text(device_list(scope, devices))
    (folder / f"{name}.yaml").write_text(job(scope, name, steps, "{all: true}", "1"))
    return folder


SCHEDULES = """\
  schedules:
    - {{name: daily, type: interval, interval: 1d, startsOn: "{starts}"}}
    - {{name: nightly, type: cron, cron: "0 {minute} {hour} ? * *", timezone: UTC}}
"""


def many_jobs(
    folder: Path, scope: str, devices: int, jobs: int, now: datetime, groups: int = 100
) -> Path:
    """`jobs` jobs over a registry of `devices` (each job a tag group, two schedules), one
    file each; no run token, so that nothing starts. The schedules are real (a daily
    interval, a daily cron) but their fire times are set 6 to 18 hours after `now`, so that
    none comes due while the benchmark watches the idle daemon."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "devices.yaml").write_text(device_list(scope, devices, tags_every=groups))
    for n in range(jobs):
        at = now + timedelta(hours=6 + 12 * n / jobs)
        starts = at.strftime("%Y-%m-%dT%H:%M:00Z")
        schedules = SCHEDULES.format(starts=starts, minute=at.minute, hour=at.hour)
        targets = f"{{tags: [group-{n % groups}]}}"
        text = job(scope, f"job-{n:04d}", SYNC_STEPS, targets, None, schedules)
        (folder / f"job-{n:04d}.yaml").write_text(text)
    return folder
