"""The fault suite reuses the engine tests' scenario (broker, fleet, runner, state)."""

from tests.engine.conftest import FAST, Scenario, scenario

__all__ = ["FAST", "Scenario", "scenario"]
