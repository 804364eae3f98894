"""What reconcile would do, from the manifests and the recorded state alone: reads only.

`plan` (create / update / conflict / delete / start, job by job), `spec` (what of a manifest
matters: essences, digests, target resolution), `policy` (who may manage a scope's jobs,
checked against git history), `git` (every question asked of git), and `plan --live`:
`live` (where each target stands on its device, asked through an Asker), `drift` (what a
step would change, from the device's replies), `asking` (the Asker over MQTT: GETs only,
rate-limited, on a connection of its own; the one module here that talks to devices). It
may import `rollout` (to split the waves a plan shows), never the loop (`core`), `link` or
`service`.
"""
