"""When jobs run by themselves: interval, cron and device-connect schedules.

`triggers` (small classes, each with one `next(after)` method), `scheduler` (which schedules
are due, from the job records; the queue of device-connect runs). It decides, the daemon
acts; it imports no other room of the engine.
"""
