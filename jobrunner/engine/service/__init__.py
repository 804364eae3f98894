"""The runner as a process: what the command line and `watch` start and stop.

`runner` (Runner: owns the state, its link and its engine; make_plan), `inspection`
(`plan --live`: the plan and the devices' answers to GETs), `daemon` (`jobrunner
watch`: file watcher, schedules, device connects, hand-offs), `reconcile` (a plan applied),
`handoff` (requests from the command line to the daemon that owns the state), `ownership`
(the leases a runner holds among several: its share, takeovers, device claims), `heap`
(what lives as long as the runner, spared by the garbage collector), `systemd`
(READY and the watchdog). The top room: it may import every other room of the engine, and
no room imports it.
"""
