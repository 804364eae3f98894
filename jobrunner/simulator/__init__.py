"""A simulated Kura fleet, and the MQTT broker it can bring along, for demos, tests and benchmarks."""
