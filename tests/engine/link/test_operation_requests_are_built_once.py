"""A synchronous step sends the same request to every target: the engine's adapter builds it
once per step, not once per dispatch; an asynchronous one carries each operation's id."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from jobrunner.device.operations import OPERATIONS, OperationSettings, operation_for
from jobrunner.engine.link.operations import OperationAdapter


def adapter(definition: str, properties: dict[str, Any]) -> OperationAdapter:
    model: type[BaseModel] = OPERATIONS[definition].properties_type
    operation = operation_for(definition, model.model_validate(properties), OperationSettings())
    return OperationAdapter(operation)


def test_a_synchronous_request_is_built_once_and_equals_a_fresh_one() -> None:
    step = adapter("Command Execution", {"command": "true", "arguments": ["-x"]})
    first, again = step.request(None), step.request(None)
    assert first is again
    assert first == step.operation.request(0)
    assert step.name() == "CMD-V1 EXEC/command"


def test_an_asynchronous_request_carries_each_operation_id() -> None:
    step = adapter(
        "Package Download / Install",
        {"uri": "https://repo.example.com/a.dp", "name": "a", "version": "1.0.0"},
    )
    one, two = step.request(11), step.request(22)
    assert (one.operation_id, two.operation_id) == (11, 22)
    assert one == step.operation.request(11)
