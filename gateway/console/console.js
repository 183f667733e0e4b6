// The migration console: reads and changes the ladder through the gateway's admin API.
// Plain DOM, no build step; the admin key stays in this tab's sessionStorage.
"use strict";

const REFRESH_MS = 3000;
const CHART_MINUTES = 180;
const $ = (selector) => document.querySelector(selector);
let rows = []; // the last status: a row per route × entity
let selected = null; // the cell shown below the matrix: {route, entity}
let pending = null; // the change the dialog is about: {row, step}
let notice = { text: "", until: 0 }; // what a change confirms, shown across refreshes for a while
let me = null; // who the key says we are: {actor, role, key, scope}

function credentials() {
  return { key: sessionStorage.getItem("banyan.key") || "", actor: sessionStorage.getItem("banyan.actor") || "" };
}

async function api(method, path, body) {
  const { key, actor } = credentials();
  const response = await fetch(path, {
    method,
    headers: { "X-Admin-Key": key, "X-Actor": actor, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const kind = response.headers.get("content-type") || "";
  const data = text && (kind.startsWith("application/json") || kind.startsWith("application/problem+json")) ? JSON.parse(text) : text;
  if (!response.ok) {
    throw new Error((data && data.detail) || `${response.status} ${response.statusText}`);
  }
  return data;
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function percent(value) {
  return value === null || value === undefined ? "" : `${(value * 100).toFixed(1)} %`;
}

function since(iso) {
  if (!iso) return "";
  const minutes = Math.max(0, (Date.now() - Date.parse(iso)) / 60000);
  return minutes < 90 ? `${Math.round(minutes)} min` : `${(minutes / 60).toFixed(1)} h`;
}

function rung(mode, pct) {
  return mode === "canary" ? `canary ${pct} %` : mode;
}

function moving(row) {
  return row.mode !== "legacy" || Boolean(row.step_down);
}

function button(label, title, onClick, quiet) {
  const b = element("button", label, quiet ? "quiet" : "");
  b.type = "button";
  b.title = title;
  b.addEventListener("click", (event) => { event.stopPropagation(); onClick(); });
  return b;
}

function badge(row) {
  const span = element("span", rung(row.mode, row.percent).replace("_", " "), "mode");
  span.style.background = `var(--${row.mode})`;
  return span;
}

// -- the matrix: routes as rows, entities as columns ---------------------------------------------
function renderMatrix() {
  const search = $("#search").value.trim().toLowerCase();
  const onlyMoving = $("#moving-only").checked;
  const entities = [...new Set(rows.map((row) => row.entity))].sort();
  const byRoute = new Map();
  for (const row of rows) {
    if (!byRoute.has(row.route)) byRoute.set(row.route, new Map());
    byRoute.get(row.route).set(row.entity, row);
  }
  const isMoving = (route) => [...byRoute.get(route).values()].some(moving);
  const routes = [...byRoute.keys()]
    .filter((route) => !onlyMoving || isMoving(route))
    .filter((route) => !search || route.toLowerCase().includes(search)
      || entities.some((entity) => byRoute.get(route).has(entity) && entity.toLowerCase().includes(search)))
    .sort((a, b) => (isMoving(b) - isMoving(a)) || a.localeCompare(b));
  const head = $("#matrix thead tr");
  head.replaceChildren(element("th", "Route"), ...entities.map((entity) => element("th", entity === "*" ? "any entity" : entity)));
  for (const th of head.children) th.scope = "col";
  const body = $("#matrix tbody");
  body.replaceChildren();
  for (const route of routes) {
    const tr = body.insertRow();
    tr.dataset.route = route;
    if (isMoving(route)) tr.className = "moving";
    const name = element("th", route);
    name.scope = "row";
    tr.append(name);
    for (const entity of entities) {
      const td = tr.insertCell();
      const row = byRoute.get(route).get(entity);
      if (!row) {
        td.textContent = "—";
        td.className = "none";
        td.title = `${route} does not serve ${entity}`;
        continue;
      }
      td.dataset.route = route;
      td.dataset.entity = entity;
      const open = element("button", undefined, "cell");
      open.type = "button";
      const verdict = row.verdict ? element("span", row.verdict, `verdict verdict-${row.verdict}`) : element("span", "on the cloud", "verdict");
      open.append(badge(row), verdict);
      if (row.step_down) open.append(element("span", "⚠ stepped down", "step-down-mark"));
      if (row.alert) open.append(element("span", "⚠ guardrail alert", "step-down-mark"));
      if (row.copies_paused) open.append(element("span", "⏸ cloud copies held", "behind-mark"));
      const behind = Object.entries(row.behind || {});
      for (const [side, owed] of behind) open.append(element("span", `⏳ ${side} owed ${owed.writes}`, "behind-mark"));
      open.setAttribute("aria-label", `${route} / ${entity}: ${rung(row.mode, row.percent)}; ${row.verdict || "on the cloud"}${row.step_down ? "; stepped down by the guardrail" : ""}${row.alert ? "; guardrail alert" : ""}${row.copies_paused ? "; the cloud's copies are held" : ""}`);
      if (selected && selected.route === route && selected.entity === entity) open.classList.add("selected");
      open.addEventListener("click", () => select(route, entity));
      td.append(open);
    }
  }
  $("#shown").textContent = `${routes.length} of ${byRoute.size} routes`;
  fillChoices(byRoute, entities);
}

function fillChoices(byRoute, entities) {
  const fill = (select, values) => {
    if (select.options.length === values.length) return; // keep what the lead picked
    select.replaceChildren(...values.map((value) => element("option", value)));
  };
  fill($("#schedule-route"), [...byRoute.keys()].sort());
  fill($("#schedule-entity"), entities);
  fill($("#freeze-entity"), [...entities.filter((entity) => entity !== "*"), "*"]);
}

// -- one cell: its rung, evidence over time, history and differences -----------------------------
function select(route, entity) {
  selected = { route, entity };
  history.replaceState(null, "", `#${encodeURIComponent(route)}/${encodeURIComponent(entity)}`);
  renderMatrix();
  renderCell();
  $("#cell").scrollIntoView({ block: "nearest" });
}

async function renderCell() {
  const row = selected && rows.find((r) => r.route === selected.route && r.entity === selected.entity);
  const section = $("#cell");
  if (!row) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  $("#cell-title").textContent = `${row.route} / ${row.entity}`;
  const down = $("#cell-step-down");
  down.hidden = !row.step_down;
  down.textContent = row.step_down
    ? `⚠ The guardrail stepped it down from ${rung(row.step_down.from_mode, row.step_down.from_percent)} ${since(row.step_down.at)} ago: ${row.step_down.reason}. Acknowledge it before stepping up again.`
    : "";
  const facts = [
    ["Rung", rung(row.mode, row.percent)],
    ["At this rung", `${since(row.since)} (version ${row.version})`],
    ["Next rung", row.next || "— (on the cloud)"],
    ["Gate", row.verdict ? `${row.verdict}: ${row.verdict_reasons.join("; ")}` : "on the cloud"],
    ["Owed writes", Object.entries(row.behind || {}).map(([side, owed]) => `${side}: ${owed.writes} (the oldest ${since(owed.oldest)} old); its keys are served by the other side until they land`).join("; ") || "none: both sides hold every write"],
    ["Calls legacy / cloud", `${row.evidence.calls_legacy} / ${row.evidence.calls_cloud}`],
    ["Cloud errors", percent(row.evidence.cloud_error_rate)],
    ["Mismatches", `${percent(row.evidence.mismatch_rate)} of ${row.evidence.judged ?? row.evidence.comparisons}`],
    ["Guardrail", [row.alert ? `alert ${since(row.alert.at)} ago (the rung stays, legacy serves every call): ${row.alert.reason}` : "",
                   row.copies_paused ? `the cloud's copies are held since ${since(row.copies_paused.at)} ago: ${row.copies_paused.reason}` : ""]
                   .filter(Boolean).join("; ") || "within its limits"],
    ["Judged with", row.settings_from],
  ];
  $("#cell-facts").replaceChildren(...facts.flatMap(([name, value]) => [element("dt", name), element("dd", value)]));
  const actions = $("#cell-actions");
  actions.replaceChildren();
  if (row.why_not) {
    // out of the person's role or scope: the row reads, and says why it does not act
    actions.append(element("p", `Read only for you: ${row.why_not}.`, "muted"));
  } else {
    if (row.mode !== "cloud") {
      actions.append(row.needs_approval
        ? button("Propose", `${row.needs_approval} needs a second person's approval`, () => ask(row, "propose"))
        : button("Promote", "one rung up, if the gate allows", () => ask(row, "promote")));
    }
    if (row.mode !== "legacy") actions.append(button("Roll back", "one rung down", () => ask(row, "rollback"), true));
    if (row.mode === "canary") actions.append(button("Set %", "change the canary percent", () => ask(row, "percent"), true));
    if (row.step_down) actions.append(button("Acknowledge", "say you have seen why the guardrail stepped it down", () => ask(row, "acknowledge"), true));
    if (row.copies_paused) actions.append(button("Resume copies", "send the cloud the copies the guardrail holds", () => ask(row, "resume"), true));
  }
  await renderCellData(row);
}

async function renderCellData(row) {
  const query = new URLSearchParams({ route: row.route, entity: row.entity });
  try {
    const [series, events, fields] = await Promise.all([
      api("GET", `/admin/cutover/series?${query}&minutes=${CHART_MINUTES}`),
      api("GET", `/admin/cutover/history?${query}`),
      api("GET", `/admin/cutover/mismatches?${new URLSearchParams(row.entity === "*" ? { route: row.route } : query)}`),
    ]);
    renderCharts(series, row);
    renderCellHistory(events);
    renderFields(fields);
    $("#cell-files-part").hidden = row.kind !== "flow";
    if (row.kind === "flow") renderFiles(await api("GET", `/admin/flows/files?${new URLSearchParams({ flow: row.route, entity: row.entity, limit: 30 })}`));
  } catch (error) {
    say(error.message);
  }
}

// A chart as inline SVG: one polyline per series over a window of minutes, an optional threshold,
// and a cursor that reads each minute's values out, following the pointer or the arrow keys.
function chart(title, series, { since, minutes, unit, threshold }) {
  const width = 560, height = 120, left = 44, bottom = 18, top = 8;
  const values = series.flatMap((s) => s.points.map((p) => p.y)).filter((y) => y !== null);
  const top_value = Math.max(...values, threshold ? threshold.value * 1.25 : 0, unit === "%" ? 0.01 : 1);
  const x = (at) => left + ((at - since) / Math.max(1, minutes - 1)) * (width - left - 4);
  const y = (value) => top + (1 - value / top_value) * (height - top - bottom);
  const label = (value) => (unit === "%" ? `${(value * 100).toFixed(value * 100 < 10 ? 1 : 0)} %` : String(Math.round(value)));
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("tabindex", "0");
  const summary = series.map((s) => {
    const last = s.points.filter((p) => p.y !== null).pop();
    return `${s.name}: ${last ? label(last.y) : "no data"} in the last minute with data`;
  }).join("; ");
  svg.setAttribute("aria-label", `${title} over the last ${span(minutes)}. ${summary}. Arrow keys read each minute.`);
  const add = (tag, attributes, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  add("line", { x1: left, y1: y(0), x2: width - 4, y2: y(0), class: "axis" });
  add("text", { x: left - 4, y: y(top_value) + 8, "text-anchor": "end", class: "tick" }, label(top_value));
  add("text", { x: left - 4, y: y(0), "text-anchor": "end", class: "tick" }, label(0));
  add("text", { x: left, y: height - 3, class: "tick" }, `−${span(minutes)}`);
  add("text", { x: width - 4, y: height - 3, "text-anchor": "end", class: "tick" }, "now");
  if (threshold) {
    add("line", { x1: left, y1: y(threshold.value), x2: width - 4, y2: y(threshold.value), class: "threshold" });
    add("text", { x: width - 6, y: y(threshold.value) - 3, "text-anchor": "end", class: "tick threshold-label" }, threshold.label);
  }
  for (const s of series) {
    // a minute without data breaks the line rather than drawing a zero that did not happen
    let run = [];
    const flush = () => {
      if (run.length === 1) add("circle", { cx: run[0][0], cy: run[0][1], r: 2.5, class: "dot", fill: s.colour });
      else if (run.length) add("polyline", { points: run.map((p) => p.join(",")).join(" "), class: "series", stroke: s.colour });
      run = [];
    };
    for (const point of s.points) {
      if (point.y === null) flush();
      else run.push([x(point.x).toFixed(1), y(point.y).toFixed(1)]);
    }
    flush();
  }
  const cursor = add("line", { x1: 0, y1: top, x2: 0, y2: y(0), class: "cursor", visibility: "hidden" });
  const figure = element("figure");
  const caption = element("figcaption", title);
  for (const s of series) {
    const key = element("span", s.name, "key");
    key.style.setProperty("--key", s.colour);
    caption.append(" ", key);
  }
  const readout = element("output", "", "readout");
  readout.setAttribute("aria-live", "polite");
  const minutesShown = series[0] ? series[0].points.map((p) => p.x) : [];
  let at = -1;
  const show = (index) => {
    if (!minutesShown.length) return;
    at = Math.min(minutesShown.length - 1, Math.max(0, index));
    const minute = minutesShown[at];
    cursor.setAttribute("x1", x(minute).toFixed(1));
    cursor.setAttribute("x2", x(minute).toFixed(1));
    cursor.setAttribute("visibility", "visible");
    const said = series.map((s) => `${s.name} ${s.points[at].y === null ? "no data" : label(s.points[at].y)}`).join(" · ");
    readout.textContent = `${new Date(minute * 60000).toISOString().slice(11, 16)} UTC: ${said}`;
  };
  const lastWithData = () => Math.max(0, ...series.map((s) => s.points.map((p) => p.y !== null).lastIndexOf(true)));
  svg.addEventListener("pointermove", (event) => {
    const box = svg.getBoundingClientRect();
    const inside = ((event.clientX - box.left) / box.width) * width;
    show(Math.round(((inside - left) / (width - left - 4)) * Math.max(1, minutes - 1)));
  });
  svg.addEventListener("focus", () => show(at < 0 ? lastWithData() : at));
  svg.addEventListener("keydown", (event) => {
    const moves = { ArrowLeft: at - 1, ArrowRight: at + 1, Home: 0, End: minutesShown.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    show(moves[event.key]);
  });
  figure.append(caption, svg, readout);
  return figure;
}

// "35 min" or "3 h": how long a chart's window is.
function span(minutes) {
  return minutes < 120 ? `${minutes} min` : `${Math.round(minutes / 60)} h`;
}

function renderCharts(series, row) {
  const byMinute = new Map(series.points.map((p) => [p.minute, p]));
  // the window fits the data: from a little before its first minute to now, ten minutes at least
  const end = series.since + series.minutes;
  const first = series.points.length ? Math.min(...series.points.map((p) => p.minute)) : series.since;
  const since = Math.max(series.since, Math.min(end - 10, first - 2));
  const minutes = [];
  for (let at = since; at < end; at++) minutes.push(at);
  const line = (pick) => minutes.map((at) => ({ x: at, y: byMinute.has(at) ? pick(byMinute.get(at)) : null }));
  const rate = (part, whole) => (p) => (p[whole] > 0 ? p[part] / p[whole] : null);
  const judged = (p) => p.comparisons - p.unjudged;
  const options = { since, minutes: end - since };
  const gate = row.gate || {}, guardrail = row.guardrail || {};
  $("#charts").replaceChildren(
    chart("Calls a minute", [
      { name: "legacy", colour: "var(--legacy)", points: line((p) => p.calls_legacy) },
      { name: "cloud", colour: "var(--cloud)", points: line((p) => p.calls_cloud) },
    ], { ...options, unit: "calls" }),
    chart("Cloud error rate", [{ name: "cloud errors", colour: "var(--bad)", points: line(rate("errors_cloud", "calls_cloud")) }],
      { ...options, unit: "%", threshold: guardrail.max_error_rate && { value: guardrail.max_error_rate, label: `guardrail ${percent(guardrail.max_error_rate)}` } }),
    chart("Mismatch rate", [{ name: "mismatches", colour: "var(--canary)", points: line((p) => (judged(p) > 0 ? p.mismatches / judged(p) : null)) }],
      { ...options, unit: "%", threshold: gate.max_mismatch_rate && { value: gate.max_mismatch_rate, label: `gate ${percent(gate.max_mismatch_rate)}` } }),
  );
}

function renderCellHistory(text) {
  const body = $("#cell-history tbody");
  body.replaceChildren();
  const events = text.split("\n").filter(Boolean).map((line) => JSON.parse(line)).reverse().slice(0, 30);
  for (const event of events) {
    const tr = body.insertRow();
    cell(tr, event.at.slice(0, 19).replace("T", " "));
    cell(tr, event.actor);
    cell(tr, event.kind, event.kind === "guardrail" ? "bad" : "");
    cell(tr, event.to_mode ? `${rung(event.from_mode, event.from_percent)} → ${rung(event.to_mode, event.to_percent)}` : "");
    cell(tr, event.reason);
  }
  if (!events.length) cell(body.insertRow(), "no changes yet");
}

function renderFiles(files) {
  const body = $("#cell-files tbody");
  body.replaceChildren();
  const side = (sides, name) => {
    const found = sides.find((s) => s.side === name);
    if (!found) return "—";
    const answered = (found.replies || []).map((r) => `, ${r.kind}${r.accepted === false ? " rejected" : ""}`).join("");
    return `${found.state}${answered}`;
  };
  for (const file of files) {
    const tr = body.insertRow();
    cell(tr, file.at.slice(0, 19).replace("T", " "));
    cell(tr, file.name);
    cell(tr, file.key || "");
    cell(tr, file.reason ? `${file.state}: ${file.reason}` : file.state, file.state === "in_doubt" || file.state === "refused" ? "bad" : "");
    cell(tr, side(file.sides, "legacy"));
    cell(tr, side(file.sides, "cloud"));
  }
  if (!files.length) cell(body.insertRow(), "no files yet");
}

function renderFields(fields) {
  const body = $("#fields tbody");
  body.replaceChildren();
  for (const field of fields) {
    const tr = body.insertRow();
    const sample = field.samples[0] || { legacy: "", cloud: "" };
    cell(tr, field.path);
    cell(tr, field.kind);
    cell(tr, String(field.count), "num");
    cell(tr, percent(field.rate), "num");
    cell(tr, field.legacy_own_rate === null ? "not sampled" : percent(field.legacy_own_rate), "num");
    cell(tr, field.verdict);
    cell(tr, JSON.stringify(sample.legacy));
    cell(tr, JSON.stringify(sample.cloud));
  }
  if (!fields.length) cell(body.insertRow(), "no differences recorded");
}

// -- the whole store: history, outbox, calendar ---------------------------------------------------
function renderHistory(text) {
  const body = $("#history tbody");
  body.replaceChildren();
  const events = text.split("\n").filter(Boolean).map((line) => JSON.parse(line)).reverse().slice(0, 50);
  for (const event of events) {
    const tr = body.insertRow();
    cell(tr, event.at.slice(0, 19).replace("T", " "));
    cell(tr, event.actor);
    cell(tr, event.kind);
    cell(tr, `${event.route}/${event.entity}`);
    cell(tr, event.to_mode ? `${rung(event.from_mode, event.from_percent)} → ${rung(event.to_mode, event.to_percent)}` : "");
    cell(tr, event.reason);
  }
}

function renderOutbox(data) {
  const list = $("#outbox");
  list.replaceChildren();
  for (const [state, count] of Object.entries(data.counts)) {
    list.append(element("dt", state.replace("_", " ")), element("dd", String(count)));
  }
}

// -- change requests: the approvers' queue ----------------------------------------------------------
function renderChanges(data) {
  const body = $("#changes tbody");
  body.replaceChildren();
  for (const change of data.changes) {
    const tr = body.insertRow();
    cell(tr, String(change.id), "num");
    cell(tr, `${change.route} · ${change.entity}`);
    cell(tr, rung(change.mode, change.percent) + (change.at ? ` at ${change.at.slice(0, 16).replace("T", " ")}` : ""));
    cell(tr, change.needs + (change.force ? " (forced)" : ""));
    cell(tr, change.proposed_by);
    cell(tr, change.reason);
    cell(tr, change.evidence.verdict || "");
    cell(tr, `${Math.max(0, (change.expires * 1000 - Date.now()) / 3600000).toFixed(0)} h`);
    const actions = tr.insertCell();
    if (me && change.proposed_by === me.actor) {
      actions.append(button("Withdraw", `withdraw change ${change.id}`, () => decide(change, "withdraw"), true));
    }
    for (const [action, label] of [["approve", "Approve"], ["reject", "Reject"]]) {
      const b = button(label, change.why_not || `${action} change ${change.id}`, () => decide(change, action), action === "reject");
      b.disabled = !change.may_approve; // the proposer, or out of scope: shown, not actionable, and why
      actions.append(b);
    }
    if (change.why_not) actions.append(element("span", change.why_not, "muted"));
  }
  if (!data.changes.length) cell(body.insertRow(), "no change waits for a decision");
}

async function decide(change, action) {
  const reason = $("#changes-note").value.trim();
  if (!reason) {
    say(`${action} needs a reason: write it above the list`);
    return;
  }
  try {
    const done = await api("POST", `/admin/changes/${change.id}/${action}`, { reason });
    notice = { text: `✓ change ${change.id} is ${done.state}`, until: Date.now() + 15000 };
    await refresh();
  } catch (error) {
    say(`change ${change.id}: ${error.message}`);
  }
}

// -- the exception inbox: counts per owner × entity, then the oldest first, each with its actions --
const ACTION_LABELS = { assign: "Take it", snooze: "Snooze 1 h", resolve: "Resolve", replay: "Replay",
  discard: "Discard", resend: "Resend", delivered: "Delivered", acknowledge: "Acknowledge", repair: "Repair" };

function renderInbox(data) {
  const counts = $("#inbox-counts tbody");
  counts.replaceChildren();
  const owners = new Set();
  for (const row of data.counts) {
    const tr = counts.insertRow();
    cell(tr, row.owner || "nobody");
    cell(tr, row.entity);
    cell(tr, String(row.open), "num");
    cell(tr, since(new Date(Date.now() - row.oldest_seconds * 1000).toISOString()));
    if (row.owner) owners.add(row.owner);
  }
  if (!data.counts.length) cell(counts.insertRow(), "nothing waits for a person");
  const pick = $("#inbox-owner");
  const wanted = ["", ...[...owners].sort()];
  if ([...pick.options].map((option) => option.value).join("|") !== wanted.join("|")) {
    const chosen = pick.value;
    pick.replaceChildren(...wanted.map((owner) => {
      const option = element("option", owner || "everyone");
      option.value = owner;
      return option;
    }));
    pick.value = wanted.includes(chosen) ? chosen : "";
  }
  const body = $("#inbox tbody");
  body.replaceChildren();
  for (const item of data.exceptions) {
    const tr = body.insertRow();
    cell(tr, String(item.id), "num");
    cell(tr, item.kind.replaceAll("_", " "));
    cell(tr, `${item.subject} · ${item.entity}`);
    cell(tr, item.key || "");
    cell(tr, item.assignee ? `${item.state} → ${item.assignee}` : item.state, `state-${item.state}`);
    cell(tr, item.owner || "nobody");
    cell(tr, String(item.count), "num");
    cell(tr, since(new Date(Date.now() - item.age_seconds * 1000).toISOString()));
    cell(tr, item.error);
    const actions = tr.insertCell();
    for (const action of item.actions.filter((name) => name !== "comment")) {
      const b = button(ACTION_LABELS[action] || action, item.why_not || `${action} exception ${item.id}`,
        () => actOn(item, action), !["replay", "resend", "acknowledge", "repair", "delivered"].includes(action));
      b.disabled = Boolean(item.why_not); // out of the person's scope: shown, not actionable, and why
      actions.append(b);
    }
    if (item.why_not) actions.append(element("span", item.why_not, "muted"));
  }
  if (!data.exceptions.length) cell(body.insertRow(), "no exception");
}

async function actOn(item, action) {
  const note = $("#inbox-note").value.trim();
  if (!note && action !== "assign") {
    say(`${action} needs a note or reason: write it above the list`);
    return;
  }
  const body = { version: item.version, note, to: action === "assign" ? credentials().actor : "cloud", minutes: 60 };
  try {
    await api("POST", `/admin/exceptions/${item.id}/${action}`, body);
    notice = { text: `✓ exception ${item.id}: ${action}`, until: Date.now() + 15000 };
    await refresh();
  } catch (error) {
    say(`exception ${item.id}: ${error.message}`);
  }
}

function renderCalendar(data) {
  const schedules = $("#schedules tbody");
  schedules.replaceChildren();
  for (const item of data.schedules.slice().reverse()) {
    const tr = schedules.insertRow();
    cell(tr, String(item.id), "num");
    cell(tr, item.at.slice(0, 16).replace("T", " "));
    cell(tr, `${item.route}/${item.entity}`);
    cell(tr, rung(item.mode, item.percent));
    cell(tr, item.state, `state-${item.state}`);
    cell(tr, item.reason);
    cell(tr, item.note);
  }
  if (!data.schedules.length) cell(schedules.insertRow(), "nothing scheduled");
  const freezes = $("#freezes tbody");
  freezes.replaceChildren();
  for (const item of data.freezes) {
    const tr = freezes.insertRow();
    cell(tr, item.entity === "*" ? "every entity" : item.entity);
    cell(tr, item.starts.slice(0, 16).replace("T", " "));
    cell(tr, item.ends.slice(0, 16).replace("T", " "));
    cell(tr, item.reason);
    cell(tr, item.actor);
  }
  if (!data.freezes.length) cell(freezes.insertRow(), "no freeze windows");
}

function renderDeprecated(versions) {
  const body = $("#deprecated tbody");
  body.replaceChildren();
  for (const version of versions) {
    const tr = body.insertRow();
    cell(tr, version.route);
    const days = Math.ceil((Date.parse(`${version.sunset}T00:00:00Z`) - Date.now()) / 86400000);
    cell(tr, `${version.sunset} (${days > 0 ? `in ${days} days` : "passed: it answers 410"})`, days > 0 ? "" : "bad");
    cell(tr, version.successor || "—");
    const callers = version.consumers.map((c) => `${c.consumer}: ${c.calls} calls, last ${c.last_at.slice(0, 16).replace("T", " ")}`);
    cell(tr, callers.join("; ") || "nobody: it can go");
  }
  if (!versions.length) cell(body.insertRow(), "no deprecated versions");
}

function renderSlos(standings) {
  const body = $("#slos tbody");
  body.replaceChildren();
  const burn = (value) => (value === null ? "—" : `${value.toFixed(1)}×`);
  for (const s of [...standings].sort((a, b) => `${a.entity}${a.route}${a.slo}`.localeCompare(`${b.entity}${b.route}${b.slo}`))) {
    const tr = body.insertRow();
    cell(tr, s.entity);
    cell(tr, s.route);
    cell(tr, `${s.slo} (${s.kind})`);
    cell(tr, `${s.objective} % over ${s.days} days`);
    cell(tr, s.sli === null ? "—" : `${s.sli.toFixed(2)} % of ${s.total}`);
    cell(tr, s.budget_left === null ? "—" : `${Math.round(s.budget_left * 100)} %`, s.budget_left !== null && s.budget_left < 0 ? "bad" : "");
    cell(tr, burn(s.burn["5m"]));
    cell(tr, burn(s.burn["1h"]));
    cell(tr, burn(s.burn["6h"]));
    cell(tr, { fast: "fast burn", slow: "slow burn" }[s.alert] || "ok", s.alert ? "bad" : "good");
  }
  if (!standings.length) cell(body.insertRow(), "no SLO has events yet");
}

const BARS = "▁▂▃▄▅▆▇█";

function renderReconciliations(found) {
  const body = $("#reconciliations tbody");
  body.replaceChildren();
  for (const r of found) {
    const tr = body.insertRow();
    const counts = r.counts || {};
    const only = counts.only || {};
    const labels = counts.labels || {};
    cell(tr, r.name);
    cell(tr, r.entity);
    cell(tr, String(r.id));
    cell(tr, r.reason ? `${r.state}: ${r.reason}` : r.state, r.state === "failed" ? "bad" : r.state === "done" ? "good" : "");
    cell(tr, String(counts.matched ?? ""));
    cell(tr, String(counts.differing ?? ""));
    cell(tr, `${labels.legacy || "legacy"} ${only.legacy ?? 0} · ${labels.cloud || "cloud"} ${only.cloud ?? 0}`);
    cell(tr, counts.drift_rate === undefined ? "" : percent(counts.drift_rate), counts.drift_rate > 0 ? "bad" : "good");
    const top = Math.max(...r.trend.map((t) => t.drift_rate || 0), 0.0001);
    const bar = (t) => (t.state === "failed" ? "✗" : BARS[Math.min(7, Math.round(((t.drift_rate || 0) / top) * 7))]);
    const drawn = cell(tr, r.trend.map(bar).join(""));
    const said = (t) => (t.state === "failed" ? `run ${t.run} failed` : `run ${t.run} ${percent(t.drift_rate || 0)}`);
    drawn.setAttribute("aria-label", r.trend.map(said).join(", "));
    cell(tr, (r.finished || "").slice(0, 19).replace("T", " "));
  }
  if (!found.length) cell(body.insertRow(), "no reconciliation has run yet");
}

// -- process instances ------------------------------------------------------------------------
let shownInstance = null; // the instance whose timeline is drawn
const GOOD_STATES = new Set(["completed", "done"]);
const BAD_STATES = new Set(["failed", "in_doubt", "refused"]);

function stateClass(state) {
  return GOOD_STATES.has(state) ? "good" : BAD_STATES.has(state) ? "bad" : "";
}

function renderProcesses(found) {
  const body = $("#processes tbody");
  body.replaceChildren();
  for (const instance of found) {
    const tr = body.insertRow();
    cell(tr, instance.process);
    const id = cell(tr, "");
    id.append(button(instance.id.slice(0, 12), `show the timeline of instance ${instance.id}`, () => showInstance(instance.id), true));
    cell(tr, instance.entity === "*" ? "" : instance.entity);
    cell(tr, instance.state, stateClass(instance.state));
    cell(tr, (instance.started || "").slice(0, 19).replace("T", " "));
    cell(tr, instance.reason || "");
  }
  if (!found.length) cell(body.insertRow(), "no process instance yet");
}

async function showInstance(id) {
  shownInstance = id;
  try {
    drawTimeline(await api("GET", `/admin/processes/${encodeURIComponent(id)}`));
  } catch (error) {
    say(error.message);
  }
}

function drawTimeline(instance) {
  const place = $("#process-timeline");
  place.replaceChildren();
  const calls = instance.calls || [];
  const start = instance.created;
  const ends = calls.map((c) => c.started - start + (c.seconds || 0));
  const total = Math.max(0.001, ...ends);
  const ns = "http://www.w3.org/2000/svg";
  const row = 22, left = 190, width = 760, height = row * calls.length + 30;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  const told = calls.map((c) => `${c.call} ${c.state}${c.served_by ? ` by ${c.served_by}` : ""}, ${((c.seconds || 0) * 1000).toFixed(0)} ms`);
  svg.setAttribute("aria-label", `Timeline of ${instance.process} ${instance.id}: ${instance.state}. ${told.join("; ")}`);
  const add = (tag, attributes, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  const x = (seconds) => left + (seconds / total) * (width - left - 70);
  calls.forEach((c, n) => {
    const y = 8 + n * row;
    const undo = c.call.startsWith("undo:");
    add("text", { x: 4, y: y + 14, class: "label" }, `${undo ? "↶ " : ""}${c.call}`);
    const from = x(c.started - start), to = x(c.started - start + (c.seconds || 0));
    const bar = add("rect", { x: from, y, width: Math.max(2, to - from), height: row - 6, class: `bar ${stateClass(c.state) || "pending"}` });
    bar.append(document.createElementNS(ns, "title"));
    bar.lastChild.textContent = `${c.route} ${c.entity || ""}: ${c.state} ${c.status || ""} ${c.reason || ""}`.trim();
    add("text", { x: to + 4, y: y + 14, class: "tick" }, `${((c.seconds || 0) * 1000).toFixed(0)} ms ${c.served_by || c.state}`);
  });
  add("text", { x: left, y: height - 4, class: "tick" }, `0 — ${(total * 1000).toFixed(0)} ms from the start`);
  const heading = element("p", `${instance.process} ${instance.id}: ${instance.state}${instance.reason ? ` — ${instance.reason}` : ""}`);
  place.append(heading, svg);
}

function utc(localValue) {
  return new Date(localValue).toISOString(); // a datetime-local field is the lead's own clock
}

async function submitCalendar(event, path, body, done) {
  event.preventDefault();
  if (!event.target.reportValidity()) return;
  try {
    await api("POST", path, body());
    notice = { text: done(), until: Date.now() + 15000 };
    event.target.reset();
    await refresh();
  } catch (error) {
    say(error.message);
  }
}

// -- changes --------------------------------------------------------------------------------------
function ask(row, step) {
  pending = { row, step };
  const titles = { promote: "Promote", rollback: "Roll back", percent: "Set the canary percent of",
                   acknowledge: "Acknowledge the step down of", resume: "Resume the cloud's copies of",
                   propose: "Propose, for a second person to approve," };  // prettier-ignore
  const now = rung(row.mode, row.percent);
  const to = (step === "promote" || step === "propose") && row.next ? `: ${now} → ${row.next}` : "";
  $("#change-title").textContent = `${titles[step]} ${row.route} / ${row.entity}${to}`;
  $("#percent-label").hidden = step !== "percent";
  $("#percent").required = step === "percent";
  $("#percent").value = row.percent || "";
  $("#force").parentElement.hidden = step === "rollback" || step === "acknowledge" || step === "resume";
  $("#force").checked = false;
  // Stepping up after a guardrail step down: the lead confirms having read why, and says why it is safe.
  const down = row.step_down && step !== "rollback" && step !== "resume" ? row.step_down : null;
  $("#step-down").hidden = !down;
  $("#step-down-text").textContent = down
    ? `The guardrail stepped it down from ${rung(down.from_mode, down.from_percent)} at ${down.at.slice(0, 19).replace("T", " ")}: ${down.reason}.`
    : "";
  $("#acknowledge").parentElement.hidden = !down || step === "acknowledge";
  $("#acknowledge").required = Boolean(down) && step !== "acknowledge";
  $("#acknowledge").checked = false;
  $("#reason").value = "";
  $("#change-error").textContent = "";
  $("#change").showModal();
  $("#reason").focus();
}

async function confirmChange(event) {
  event.preventDefault();
  if (!$("#change-form").reportValidity()) return;
  const { row, step } = pending;
  const { route, entity } = row;
  const reason = $("#reason").value;
  const force = $("#force").checked;
  const acknowledge = $("#acknowledge").checked;
  const path = `/admin/cutover/${encodeURIComponent(route)}/${encodeURIComponent(entity)}`;
  try {
    if (step === "propose") {
      const [mode, pct] = row.next.split(" "); // "cloud", or "canary 25 %"
      const change = await api("POST", "/admin/changes", { route, entity, mode, percent: Number(pct || 0), reason, force });
      $("#change").close();
      notice = { text: `✓ change ${change.id} proposed: ${route} / ${entity} → ${row.next}; a second person approves it`, until: Date.now() + 15000 };
      await refresh();
      return;
    }
    const done = step === "percent"
      ? await api("PUT", path, { mode: "canary", percent: Number($("#percent").value), reason, force, acknowledge })
      : await api("POST", `${path}/${step}`, { reason, force, acknowledge });
    $("#change").close();
    const text = step === "acknowledge"
      ? `✓ acknowledged the step down of ${route} / ${entity}`
      : step === "resume"
      ? `✓ the cloud's copies of ${route} / ${entity} go again`
      : `✓ ${route} / ${entity} is now on ${rung(done.mode, done.percent)} (version ${done.version})`;
    notice = { text, until: Date.now() + 15000 };
    await refresh();
  } catch (error) {
    $("#change-error").textContent = error.message;
  }
}

function say(text) {
  $("#message").textContent = text;
}

async function refresh() {
  try {
    const owner = $("#inbox-owner").value;
    const [status, events, outbox, calendar, deprecated, standings, reconciliations, inbox, processes, changes] = await Promise.all([
      api("GET", "/admin/cutover"), api("GET", "/admin/cutover/history"), api("GET", "/admin/outbox"),
      api("GET", "/admin/cutover/calendar"), api("GET", "/admin/deprecations"), api("GET", "/admin/slo"),
      api("GET", "/admin/reconcile"),
      api("GET", `/admin/exceptions${owner ? `?owner=${encodeURIComponent(owner)}` : ""}`),
      api("GET", "/admin/processes?limit=20"), api("GET", "/admin/changes?state=proposed"),
    ]);
    rows = status;
    renderMatrix();
    renderHistory(events);
    renderOutbox(outbox);
    renderCalendar(calendar);
    renderDeprecated(deprecated);
    renderSlos(standings);
    renderReconciliations(reconciliations);
    renderInbox(inbox);
    renderProcesses(processes);
    renderChanges(changes);
    if (shownInstance) await showInstance(shownInstance);
    await renderCell();
    $("#main").hidden = false;
    $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    say(Date.now() < notice.until ? notice.text : "");
    return true;
  } catch (error) {
    say(error.message);
    return false;
  }
}

// -- signing in and out ---------------------------------------------------------------------------
let timer = null;

function signedIn(yes) {
  $("#login").hidden = yes;
  $("#who").hidden = !yes;
  $("#main").hidden = !yes;
  // a person's key names its holder (role and scope); the gateway's shared key takes the name typed in
  $("#who-name").textContent = !yes ? "" : me && me.key === "personal"
    ? `Signed in as ${me.actor} (${me.role} · ${me.scope})`
    : `Signed in as ${credentials().actor}`;
}

async function connect(event) {
  event?.preventDefault();
  sessionStorage.setItem("banyan.key", $("#key").value);
  sessionStorage.setItem("banyan.actor", $("#actor").value);
  clearInterval(timer);
  // one call tells a wrong key, before the page asks for everything with it (each wrong try counts)
  me = await api("GET", "/admin/whoami").catch((error) => { say(error.message); return null; });
  if (me && await refresh()) {
    signedIn(true);
    timer = setInterval(refresh, REFRESH_MS);
  } else {
    signedIn(false);
  }
}

function signOut() {
  clearInterval(timer);
  sessionStorage.removeItem("banyan.key");
  $("#key").value = "";
  rows = [];
  selected = null;
  signedIn(false);
  say("signed out");
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login").addEventListener("submit", connect);
  $("#sign-out").addEventListener("click", signOut);
  $("#confirm").addEventListener("click", confirmChange);
  $("#search").addEventListener("input", renderMatrix);
  $("#moving-only").addEventListener("change", renderMatrix);
  $("#inbox-owner").addEventListener("change", refresh);
  $("#schedule-form").addEventListener("submit", (event) => submitCalendar(event, "/admin/cutover/schedule", () => ({
    route: $("#schedule-route").value, entity: $("#schedule-entity").value, mode: $("#schedule-mode").value,
    percent: Number($("#schedule-percent").value), at: utc($("#schedule-at").value), reason: $("#schedule-reason").value,
  }), () => `✓ scheduled ${$("#schedule-route").value} / ${$("#schedule-entity").value} → ${$("#schedule-mode").value}`));
  $("#freeze-form").addEventListener("submit", (event) => submitCalendar(event, "/admin/cutover/freeze", () => ({
    entity: $("#freeze-entity").value, starts: utc($("#freeze-starts").value), ends: utc($("#freeze-ends").value),
    reason: $("#freeze-reason").value,
  }), () => `✓ ${$("#freeze-entity").value} frozen`));
  const [route, entity] = location.hash.slice(1).split("/").map(decodeURIComponent);
  if (route && entity) selected = { route, entity }; // a cell's own address: #route/entity
  const { key, actor } = credentials();
  $("#actor").value = actor;
  if (key) {
    $("#key").value = key;
    connect();
  }
});
