"""Rollouts (DESIGN §6): which targets of a running execution may start now.

`gate` (waves one at a time, thresholds, soak, abort, rate, windows: decisions only),
`coverage` (which targets a start covers: not done, not left out by the retry limit), `waves`
(splitting the targets into waves, by a stable hash), `windows` (when a maintenance window
is open, per device time zone). Pure decisions over the recorded state: it imports no other
room of the engine.
"""
