"""What the tests and the benchmarks start for themselves, and the runner never imports.

`postgres` (a PostgreSQL server of its own on a free port). The MQTT broker they start is the
simulator's (`jobrunner.simulator.broker`): `jobrunner demo` brings the same one.
"""
