"""The README's "Your first job", run as written: against a broker and three simulated
gateways, every command of it succeeds and the job ends PROCESS_OK on its two targets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from jobrunner.simulator.broker import RunningBroker
from jobrunner.simulator.config import FleetConfig
from jobrunner.simulator.fleet import Fleet

ROOT = Path(__file__).resolve().parents[1]


def _walkthrough() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Your first job", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) >= 3, "the walkthrough's shell blocks"
    return "\n".join(textwrap.dedent(block) for block in blocks)


def test_the_readme_walkthrough_runs_as_written(broker: RunningBroker, tmp_path: Path) -> None:
    scope = f"acme{uuid.uuid4().hex[:6]}"  # the README's 'acme', alone on the test broker
    script = (
        _walkthrough()
        .replace("mqtt://localhost:1883", broker.url)
        .replace("acme", scope)
        .replace("jobrunner-plant-turin", f"readme-{scope}")
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JOBRUNNER_")},
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    with Fleet(FleetConfig(devices=3, broker=broker.url, account=scope)) as fleet:
        done = subprocess.run(
            ["sh", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        contacted = fleet.contacted("command")

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert f"{scope}/hello execution 1: TERMINATED (2 PROCESS_OK)" in output
    assert "gw-0001" in output and "say-hello" in output
    assert contacted == {"gw-0001", "gw-0002"}, "the line-3 gateways, not gw-0003"
