"""The dashboard's three pages: a frame each; the script fills it from the JSON API.

Nothing a device or a manifest said is ever put into the HTML here: the pages carry only
the job's scope and name (escaped, in data attributes), and `dashboard.js` writes every
value with `textContent`, never as markup. The Content-Security-Policy set by the app
allows no inline script and nothing from another origin: the pages work without a network.
"""

from __future__ import annotations

from html import escape

_FRAME = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · jobrunner</title>
<link rel="stylesheet" href="/static/dashboard.css">
<script src="/static/dashboard.js" defer></script>
</head>
<body data-page="{page}"{data}>
<header>
  <a class="brand" href="/">jobrunner</a>
  <nav><a href="/">Jobs</a> <a href="/devices">Devices</a></nav>
  <span id="connection" class="connection" title="the runner's broker connection"></span>
  <span id="updated" class="updated"></span>
</header>
<main>
{body}
</main>
</body>
</html>
"""

_OVERVIEW = """<h1>Jobs</h1>
<p id="problem" class="problem" hidden></p>
<p class="legend">Sorted by what needs attention: aborted, failed, awaiting approval,
conflict, running, then the rest. Chips count targets: awaiting, completing, notified,
ok, failed.</p>
<table id="jobs" class="grid">
<thead><tr><th>Job</th><th>Attention</th><th>Progress</th><th>Targets by status</th>
<th>Rollout</th><th>Last execution</th><th>Next fire</th></tr></thead>
<tbody></tbody>
</table>
<p id="empty" class="empty" hidden>No job is recorded yet.</p>
<section id="notifications" hidden>
<h2>Notifications</h2>
<table id="backlog" class="grid">
<thead><tr><th>Notification</th><th>Undelivered</th><th>Oldest waiting</th><th>Dropped</th>
</tr></thead>
<tbody></tbody>
</table>
</section>
"""

_JOB = """<h1 id="title"></h1>
<p id="problem" class="problem" hidden></p>
<p id="summary" class="summary"></p>
<section id="rollout" hidden>
<h2>Rollout <span id="rollout-state" class="badge"></span></h2>
<p id="rollout-reason" class="reason"></p>
<table id="waves" class="grid">
<thead><tr><th>Wave</th><th>Targets</th><th>State</th><th>Targets by status</th>
<th>Started</th><th>Ended</th><th>Gate</th></tr></thead>
<tbody></tbody>
</table>
</section>
<section>
<h2>Targets</h2>
<form id="filter" class="filter">
  <label>Status <select name="status"><option value="">any</option></select></label>
  <label id="wave-filter" hidden>Wave
    <select name="wave"><option value="">any</option></select></label>
  <label>Client id <input name="q" type="search" autocomplete="off"></label>
  <span id="page-info"></span>
  <button type="button" id="previous">&larr;</button>
  <button type="button" id="next">&rarr;</button>
</form>
<table id="targets" class="grid">
<thead><tr><th>Client id</th><th>Wave</th><th>Step</th><th>Status</th><th>Attempts</th>
<th>Reason</th></tr></thead>
<tbody></tbody>
</table>
</section>
<section>
<h2>Executions</h2>
<table id="executions" class="grid">
<thead><tr><th>#</th><th>Status</th><th>Trigger</th><th>Started</th><th>Ended</th>
<th>Targets by status</th></tr></thead>
<tbody></tbody>
</table>
</section>
<section>
<h2>Log <select id="log-execution"></select></h2>
<pre id="log" class="log"></pre>
</section>
"""

_DEVICES = """<h1>Devices</h1>
<p id="problem" class="problem" hidden></p>
<form id="filter" class="filter">
  <label>Client id, name or tag <input name="q" type="search" autocomplete="off"></label>
  <label>Selector <input name="selector" type="search" autocomplete="off" size="40"
    placeholder="site=turin,kura.version&gt;=5.4"
    title="a label selector over labels and kura.model, kura.firmware, kura.version, kura.app">
  </label>
  <label>Status <select name="status"><option value="">any</option>
    <option>CONNECTED</option><option>DISCONNECTED</option><option>MISSING</option>
    <option>UNKNOWN</option></select></label>
  <span id="shown"></span>
  <button type="button" id="previous">&larr;</button>
  <button type="button" id="next">&rarr;</button>
</form>
<p id="device-counts" class="summary"></p>
<table id="devices" class="grid">
<thead><tr><th>Scope</th><th>Client id</th><th>Name</th><th>Status</th><th>Last seen</th>
<th>Firmware</th><th>Kura</th><th>Tags</th><th>Labels</th></tr></thead>
<tbody></tbody>
</table>
<p id="empty" class="empty" hidden>No device is known yet.</p>
"""


def overview_page() -> str:
    return _FRAME.format(title="Jobs", page="overview", data="", body=_OVERVIEW)


def job_page(scope: str, name: str) -> str:
    data = f' data-scope="{escape(scope)}" data-name="{escape(name)}"'
    title = escape(f"{scope}/{name}")
    return _FRAME.format(title=title, page="job", data=data, body=_JOB)


def devices_page() -> str:
    return _FRAME.format(title="Devices", page="devices", data="", body=_DEVICES)
