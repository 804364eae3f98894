"""The engine's loop and the execution of jobs: one thread, every deadline on its own clock.

`loop` (Engine: take events, apply them, dispatch, write, publish), `executions` (start, stop,
freeze, attach), `dispatch` (which targets get a request this turn), `outcomes` (replies,
notifications and deadlines applied to targets), `progression` (pure: a target's state and
an outcome in, the transition out), `recovery` (status queries; taking up what a previous
process left), `probes` (who is connected, asked after a broker restart), `gates` (carrying
out a rollout's gate; stops and aborts), `runtime` (what the parts share, never written),
`timers` (the deadlines), `devices` (the registry as the engine sees it). It may import
`link` (the seam) and `rollout` (the gate), never `service`, `planning` or `schedules`.
"""
