"""The engine's seam to the devices, and what flows back through it.

`ports` (the seam: DeviceLink, StepOperation, outcomes, tags), `mqtt` (the seam over the MQTT
device client), `memory` (the seam in memory, for tests and the loopback benchmark),
`operations` (the device layer's step operations as the engine's), `events` (what reaches the
engine's thread: the inbox), `observers` (who hears of requests and executions: metrics,
notifications). The bottom room: it imports the device and state layers, no other room.
"""
