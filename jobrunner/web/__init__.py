"""Seeing the fleet: the dashboard, the JSON API, `/metrics`, `/livez` and `/readyz` of
`watch --http`.

server    Dashboard: uvicorn on a thread beside the daemon, a companion of `watch`
app       the ASGI application: routes, security headers, the token gate (auth)
views     the API's objects (those of `status -o json`), a job's targets paged
reader    the state directory followed as the owner writes it (never the engine's objects)
metrics   EngineMetrics (an engine observer) and FleetCollector (read at each scrape)
health    what /livez and /readyz (alias /healthz) check
pages     the HTML frames; static/ holds the one script and stylesheet they load
"""
