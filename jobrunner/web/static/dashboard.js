// jobrunner dashboard: fills the page from the JSON API and keeps it live.
// Every value comes from devices or manifests and is untrusted: it is written with
// textContent (never as markup), and links are built from encoded path segments.
"use strict";

const POLL_MS = 1000;
const STATUSES = ["PROCESS_AWAITING", "AWAITING_COMPLETION", "NOTIFIED_COMPLETION",
  "PROCESS_OK", "PROCESS_FAILED"];

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell ?? "";
    tr.appendChild(td);
  }
  return tr;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function badge(status) {
  return el("span", status, "badge s-" + String(status || "none").toLowerCase());
}

function waveNote(wave) {
  // The gate's decision, and who let a wave that waits for an approval go.
  const approval = wave.approvedBy ? "approved by " + wave.approvedBy + " at " + wave.approvedOn
    : (wave.approval ? "approval required" : "");
  return [wave.decision, approval].filter(Boolean).join("; ");
}

// The short names `status` prints: a chip says what it counts.
const SHORT = {PROCESS_AWAITING: "awaiting", AWAITING_COMPLETION: "completing",
  NOTIFIED_COMPLETION: "notified", PROCESS_OK: "ok", PROCESS_FAILED: "failed"};

function countsBar(counts) {
  const bar = el("span", null, "counts");
  for (const status of STATUSES) {
    const n = counts && counts[status];
    if (n) {
      const part = el("span", n + " " + SHORT[status], "badge s-" + status.toLowerCase());
      part.title = n + " target(s) " + status;
      bar.appendChild(part);
    }
  }
  return bar;
}

function progressBar(counts, total) {
  // Targets with an outcome (ok or failed) out of all: green for ok, red for failed.
  const ok = (counts && counts.PROCESS_OK) || 0;
  const failed = (counts && counts.PROCESS_FAILED) || 0;
  const bar = el("span", null, "progress");
  bar.title = (ok + failed) + " of " + total + " target(s) ended: " + ok + " ok, " + failed +
    " failed";
  for (const [n, cls] of [[ok, "p-ok"], [failed, "p-failed"]]) {
    const part = el("span", null, cls);
    part.style.width = (total ? 100 * n / total : 0) + "%";
    bar.appendChild(part);
  }
  const wrap = el("span", null, "progress-wrap");
  wrap.append(bar, el("span", total ? Math.round(100 * (ok + failed) / total) + "%" : "–",
    "progress-text"));
  return wrap;
}

function time(iso) {
  if (!iso) return "";
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  const text = Math.abs(seconds) < 90 ? Math.abs(seconds) + "s"
    : Math.abs(seconds) < 5400 ? Math.round(Math.abs(seconds) / 60) + "m"
    : Math.round(Math.abs(seconds) / 3600) + "h";
  const span = el("span", seconds >= 0 ? text + " ago" : "in " + text);
  span.title = iso;
  return span;
}

// What status marks a job with ([orphaned] [conflict] [suspend]), as badges a glance finds.
const MARKS = [
  ["orphaned", "manifest removed", "its manifest was removed: nothing of it runs any more;" +
    " its history is kept; declaring it again brings it back"],
  ["conflict", "conflict", "its manifest changes what the first execution froze: the change" +
    " is not applied (jobrunner status JOB lists every difference)"],
  ["suspend", "suspended", "suspend: true in its manifest: it starts nothing"],
];

function marks(job) {
  return MARKS.filter(([key]) => job[key]).map(([key, text, title]) => {
    const mark = el("span", text, "badge mark m-" + key);
    mark.title = title;
    mark.dataset.mark = key;
    return mark;
  });
}

function jobLink(scope, name) {
  const a = el("a", scope + "/" + name);
  a.href = "/jobs/" + encodeURIComponent(scope) + "/" + encodeURIComponent(name);
  return a;
}

async function api(path) {
  const response = await fetch(path, {headers: {Accept: "application/json"},
    credentials: "same-origin"});
  if (!response.ok) {
    const text = await response.text();
    let said = text;
    try { said = JSON.parse(text).error || text; } catch (_) { /* not JSON: as it came */ }
    throw new Error(response.status + " " + said);
  }
  return response.json();
}

function problem(error) {
  const p = document.getElementById("problem");
  if (!p) return;
  p.hidden = !error;
  p.textContent = error ? String(error.message || error) : "";
}

async function runner() {
  try {
    const facts = await api("/api/v1/runner");
    const c = document.getElementById("connection");
    c.textContent = facts.brokerConnected ? "broker connected" : "broker disconnected";
    c.className = "connection " + (facts.brokerConnected ? "up" : "down");
    document.getElementById("updated").textContent =
      facts.clientId + " · " + facts.inFlight + " in flight";
  } catch (error) {
    const c = document.getElementById("connection");
    c.textContent = "dashboard unreachable";
    c.className = "connection down";
  }
}

function every(action) {
  let timer = null;
  const tick = async () => {
    try { await action(); problem(null); } catch (error) { problem(error); }
    timer = setTimeout(tick, POLL_MS);
  };
  tick();
  return () => clearTimeout(timer);
}

// -- the pages ----------------------------------------------------------------------------

async function overview() {
  const jobs = await api("/api/v1/jobs");
  document.getElementById("empty").hidden = jobs.length > 0;
  fill(document.querySelector("#jobs tbody"), jobs.map((job) => {
    if (job.error) {
      const tr = row([jobLink(job.scope, job.name), badge(job.attention),
        el("span", job.error, "reason"), "", "", "", ""]);
      tr.dataset.job = job.scope + "/" + job.name;
      return tr;
    }
    const last = job.lastExecution;
    const rollout = job.rollout ? badge(job.rollout.state) : "";
    if (job.rollout && job.rollout.wave) rollout.textContent += " · " + job.rollout.wave;
    const named = el("div");
    named.replaceChildren(jobLink(job.scope, job.name), ...marks(job));
    if (job.description) named.appendChild(el("div", job.description, "reason description"));
    const ran = el("span");
    if (last) ran.replaceChildren(badge(last.status), time(last.endedOn || last.startedOn));
    const tr = row([named, badge(job.attention), progressBar(job.counts, job.targetCount),
      countsBar(job.counts), rollout, ran, job.nextFire ? time(job.nextFire) : ""]);
    tr.dataset.job = job.scope + "/" + job.name;
    tr.dataset.attention = job.attention;
    return tr;
  }));
  // What waits to be posted, by notification: a receiver that falls behind shows here.
  const backlog = await api("/api/v1/notifications");
  document.getElementById("notifications").hidden = backlog.length === 0;
  fill(document.querySelector("#backlog tbody"), backlog.map((b) => row([
    b.notification + (b.runner ? " (" + b.runner + ")" : ""),
    b.undelivered ? el("span", b.undelivered, "badge s-process_awaiting") : "0",
    b.oldest ? time(b.oldest) : "",
    b.dropped ? el("span", b.dropped, "badge s-process_failed") : "0"])));
}

function jobPage() {
  const body = document.body;
  const base = "/api/v1/jobs/" + encodeURIComponent(body.dataset.scope) + "/" +
    encodeURIComponent(body.dataset.name);
  const form = document.getElementById("filter");
  const statusSelect = form.elements.status;
  for (const status of STATUSES) statusSelect.appendChild(new Option(status, status));
  let offset = 0;
  const limit = 100;
  let shownLog = null;
  let stream = null;

  function query() {
    const q = new URLSearchParams({offset: String(offset), limit: String(limit)});
    if (statusSelect.value) q.set("status", statusSelect.value);
    if (form.elements.wave.value) q.set("wave", form.elements.wave.value);
    if (form.elements.q.value) q.set("q", form.elements.q.value);
    return q.toString();
  }

  async function refresh() {
    const job = await api(base + "?" + query());
    document.getElementById("title").replaceChildren(
      document.createTextNode(job.scope + "/" + job.name + " "), ...marks(job));
    document.getElementById("summary").replaceChildren(
      el("span", job.targetCount + " targets "), countsBar(job.counts),
      el("span", job.description ? " · " + job.description : ""));
    const rollout = job.rollout;
    document.getElementById("rollout").hidden = !rollout;
    document.getElementById("wave-filter").hidden = !rollout;
    if (rollout) {
      document.getElementById("rollout-state").replaceChildren(badge(rollout.state));
      document.getElementById("rollout-reason").textContent = rollout.reason || "";
      // The rollout's timeline: each wave, when it started and ended, the gate's numbers.
      fill(document.querySelector("#waves tbody"), rollout.waves.map((w) =>
        row([w.name, w.targets, badge(w.state), countsBar(w.counts), time(w.startedOn),
          time(w.endedOn), waveNote(w)])));
      const waveSelect = form.elements.wave;
      const names = rollout.waves.map((w) => w.name);
      if (waveSelect.options.length - 1 !== names.length) {
        waveSelect.replaceChildren(new Option("any", ""), ...names.map((n) => new Option(n, n)));
      }
    }
    fill(document.querySelector("#targets tbody"), job.targets.map((t) => {
      const tr = row([t.clientId, t.wave || "", (t.step ? t.stepIndex + " " + t.step :
        t.stepIndex), badge(t.status), t.attempts || "", el("span", t.message || "", "reason")]);
      tr.dataset.clientId = t.clientId;
      tr.dataset.status = t.status;
      return tr;
    }));
    const page = job.page;
    document.getElementById("page-info").textContent = page.total === 0 ? "none" :
      (page.offset + 1) + "-" + Math.min(page.offset + page.limit, page.total) + " of " +
      page.total;
    document.getElementById("previous").disabled = page.offset === 0;
    document.getElementById("next").disabled = page.offset + page.limit >= page.total;
    fill(document.querySelector("#executions tbody"), job.executions.slice().reverse().map(
      (e) => row([e.id, badge(e.status), e.trigger, time(e.startedOn), time(e.endedOn),
        countsBar(e.counts)])));
    const choice = document.getElementById("log-execution");
    const ids = job.executions.map((e) => String(e.id)).reverse();
    if (choice.options.length !== ids.length) {
      const keep = choice.value;
      choice.replaceChildren(...ids.map((id) => new Option("execution " + id, id)));
      choice.value = keep && ids.includes(keep) ? keep : (ids[0] || "");
    }
    if (choice.value && choice.value !== shownLog) follow(choice.value);
  }

  function follow(id) {
    shownLog = id;
    if (stream) stream.close();
    const pre = document.getElementById("log");
    pre.textContent = "";
    stream = new EventSource(base + "/executions/" + encodeURIComponent(id) + "/log/stream");
    stream.onmessage = (event) => {
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.appendChild(document.createTextNode(event.data + "\n"));
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    };
  }

  document.getElementById("log-execution").addEventListener("change",
    (event) => follow(event.target.value));
  form.addEventListener("input", () => { offset = 0; refresh().catch(problem); });
  form.addEventListener("submit", (event) => event.preventDefault());
  document.getElementById("previous").addEventListener("click", () => {
    offset = Math.max(0, offset - limit); refresh().catch(problem);
  });
  document.getElementById("next").addEventListener("click", () => {
    offset += limit; refresh().catch(problem);
  });
  every(refresh);
}

const DEVICES_PAGE = 200;  // a fleet of 10,000 is paged, not drawn whole every second
let devicesOffset = 0;

async function devices() {
  const form = document.getElementById("filter");
  const selector = form.elements.selector.value.trim();
  const query = selector ? "?selector=" + encodeURIComponent(selector) : "";
  const rows = await api("/api/v1/devices" + query);
  document.getElementById("empty").hidden = rows.length > 0 || !!selector;
  const q = form.elements.q.value.trim();
  const status = form.elements.status.value;
  const found = rows.filter((d) => !q || d.clientId.includes(q) ||
    (d.displayName || "").includes(q) || (d.tags || []).includes(q));
  // Counts by status of what the text and the selector keep, whatever the status filter.
  const counts = {};
  for (const d of found) counts[d.status] = (counts[d.status] || 0) + 1;
  document.getElementById("device-counts").replaceChildren(...Object.keys(counts).sort()
    .map((s) => el("span", counts[s] + " " + s.toLowerCase(), "badge s-" + s.toLowerCase())));
  const matching = status ? found.filter((d) => d.status === status) : found;
  if (devicesOffset >= matching.length) devicesOffset = 0;
  const page = matching.slice(devicesOffset, devicesOffset + DEVICES_PAGE);
  document.getElementById("shown").textContent = matching.length === 0 ? "none of " +
    rows.length : (devicesOffset + 1) + "-" + (devicesOffset + page.length) + " of " +
    matching.length + (matching.length < rows.length ? " (" + rows.length + " in all)" : "");
  document.getElementById("previous").disabled = devicesOffset === 0;
  document.getElementById("next").disabled = devicesOffset + DEVICES_PAGE >= matching.length;
  fill(document.querySelector("#devices tbody"), page.map((d) => {
    const tr = row([d.scope, d.clientId, d.displayName || "", badge(d.status), time(d.lastSeen),
      d.firmware || "", d.frameworkVersion || "", (d.tags || []).join(", "),
      Object.entries(d.labels || {}).map(([k, v]) => k + "=" + v).join(", ")]);
    tr.dataset.clientId = d.clientId;
    tr.dataset.status = d.status;
    return tr;
  }));
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  every(runner);
  if (page === "overview") every(overview);
  else if (page === "job") jobPage();
  else if (page === "devices") {
    const form = document.getElementById("filter");
    const field = form.querySelector("input[name=selector]");
    field.value = new URLSearchParams(location.search).get("selector") || "";
    form.addEventListener("submit", (event) => event.preventDefault());
    form.addEventListener("input", () => {
      const address = new URL(location.href);
      if (field.value.trim()) address.searchParams.set("selector", field.value.trim());
      else address.searchParams.delete("selector");
      history.replaceState(null, "", address);
      devicesOffset = 0;
      devices().then(() => problem(null), problem);
    });
    document.getElementById("previous").addEventListener("click", () => {
      devicesOffset = Math.max(0, devicesOffset - DEVICES_PAGE);
      devices().then(() => problem(null), problem);
    });
    document.getElementById("next").addEventListener("click", () => {
      devicesOffset += DEVICES_PAGE;
      devices().then(() => problem(null), problem);
    });
    every(devices);
  }
});
